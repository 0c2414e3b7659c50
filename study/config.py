"""The study configuration: one TOML file, every key optional, unknown keys refused.

Defaults follow the paper's study (section 4.2.2): 746 ratings over 24 raters is
about 31 tasks per rater; two ratings per task give the pairs of raters used for
the inter-rater agreement of the review; no confidence ratings.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

IDENTITY_MODES = ("invite", "prolific", "open")

DEFAULT_CONSENT = """\
You are invited to take part in a research study about how people read images
produced by neural-network interpretability tools. You will see {tasks_total} short
picture puzzles, after a short practice; the study takes about 15 minutes.

- Taking part is voluntary; you may stop at any time by closing the page.
- We record only your answers, their timing, and your study identifier. We do not
  record your name, e-mail address or any other personal information.
- Anonymized answers may be published with the study's results.
"""

DEFAULT_INSTRUCTIONS = """\
A neural network recognizes objects in photos. For each task we show you:

1. a **visualization**: an artificial image that shows what one "neuron" of the
   network responds to most strongly;
2. a **photo** with two outlined regions, **A** and **B** (also shown enlarged).

Your job: use the visualization to decide **which region, A or B, makes this
neuron respond**. Look for shapes, textures, colours or object parts that the
visualization and a region have in common. If the visualization does not help you
decide, choose **Can't decide**: that is a valid answer, please do not guess.

Answers are final: you cannot go back to a previous task.
"""


class ConfigError(ValueError):
    """A study configuration that cannot be used."""


@dataclass(frozen=True)
class PracticeConfig:
    """Practice trials shown before the main tasks, with feedback."""

    trials: int = 3  # trials per practice round
    min_correct: int = 3  # correct answers needed in one round to pass
    max_rounds: int = 3  # after this many failed rounds the rater continues, flagged as not passed


@dataclass(frozen=True)
class StudyConfig:
    """Everything the study app and the assignment policy read from `study.toml`."""

    title: str = "Which region activates the neuron?"
    identity: str = "invite"  # invite | prolific | open
    tasks_per_rater: int = 31  # main tasks per rater, catch trials not included
    ratings_per_task: int = 2  # k: target number of ratings of each task
    catch_per_rater: int = 3  # catch trials mixed into each rater's tasks
    confidence: bool = False  # ask a 1-5 confidence rating with each answer
    seed: int = 0  # seeds the random choices of the assignment policy
    stale_minutes: float = 30.0  # an unanswered assignment older than this stops counting toward coverage
    consent_text: str = DEFAULT_CONSENT
    instructions_text: str = DEFAULT_INSTRUCTIONS
    completion_code: str = ""  # one study-wide code (as Prolific expects); empty: a code per rater
    prolific_completion_url: str = "https://app.prolific.com/submissions/complete?cc={code}"
    practice: PracticeConfig = field(default_factory=PracticeConfig)

    @property
    def tasks_total(self) -> int:
        """Assignments per rater: main tasks plus catch trials."""
        return self.tasks_per_rater + self.catch_per_rater

    def page_text(self, text: str) -> str:
        """Fill the placeholder `{tasks_total}` of a consent or instructions text."""
        return text.replace("{tasks_total}", str(self.tasks_total))


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def validate_config(cfg: StudyConfig) -> StudyConfig:
    """Raise ConfigError (one line) when a value is out of range; return the config."""
    _check(cfg.identity in IDENTITY_MODES, f"identity must be one of {', '.join(IDENTITY_MODES)}, not {cfg.identity!r}")
    _check(cfg.tasks_per_rater >= 1, f"tasks_per_rater must be >= 1, not {cfg.tasks_per_rater}")
    _check(cfg.ratings_per_task >= 1, f"ratings_per_task must be >= 1, not {cfg.ratings_per_task}")
    _check(cfg.catch_per_rater >= 0, f"catch_per_rater must be >= 0, not {cfg.catch_per_rater}")
    _check(cfg.stale_minutes > 0, f"stale_minutes must be > 0, not {cfg.stale_minutes}")
    _check(cfg.consent_text.strip() != "", "consent_text must not be empty")
    _check(cfg.instructions_text.strip() != "", "instructions_text must not be empty")
    _check("{code}" in cfg.prolific_completion_url, "prolific_completion_url must contain {code}")
    p = cfg.practice
    _check(p.trials >= 3, f"practice.trials must be >= 3 (the issue asks for at least 3), not {p.trials}")
    _check(1 <= p.min_correct <= p.trials, f"practice.min_correct must be between 1 and practice.trials, not {p.min_correct}")
    _check(p.max_rounds >= 1, f"practice.max_rounds must be >= 1, not {p.max_rounds}")
    return cfg


def _coerce(cls: type, table: dict[str, Any], where: str) -> dict[str, Any]:
    known = {f.name: f for f in fields(cls)}
    out: dict[str, Any] = {}
    for key, value in table.items():
        _check(key in known, f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")
        default = getattr(cls(), key)
        if isinstance(default, bool):
            _check(isinstance(value, bool), f"{where}.{key} must be true or false")
        elif isinstance(default, int):
            _check(isinstance(value, int) and not isinstance(value, bool), f"{where}.{key} must be an integer")
        elif isinstance(default, float):
            _check(isinstance(value, (int, float)) and not isinstance(value, bool), f"{where}.{key} must be a number")
            value = float(value)
        elif isinstance(default, str):
            _check(isinstance(value, str), f"{where}.{key} must be a string")
        out[key] = value
    return out


def config_from_dict(data: dict[str, Any]) -> StudyConfig:
    """Build a validated config from the TOML layout: `[study]`, `[consent]`, `[instructions]`, `[practice]`, `[prolific]`."""
    data = dict(data)
    sections = {"study", "consent", "instructions", "practice", "prolific"}
    for key in data:
        _check(key in sections, f"unknown section [{key}] (known: {', '.join(sorted(sections))})")
    flat: dict[str, Any] = dict(data.get("study", {}))
    if "consent" in data:
        _check(set(data["consent"]) <= {"text"}, "[consent] takes only `text`")
        flat["consent_text"] = data["consent"].get("text", DEFAULT_CONSENT)
    if "instructions" in data:
        _check(set(data["instructions"]) <= {"text"}, "[instructions] takes only `text`")
        flat["instructions_text"] = data["instructions"].get("text", DEFAULT_INSTRUCTIONS)
    if "prolific" in data:
        pro = data["prolific"]
        _check(set(pro) <= {"completion_code", "completion_url"}, "[prolific] takes only `completion_code` and `completion_url`")
        if "completion_code" in pro:
            flat["completion_code"] = pro["completion_code"]
        if "completion_url" in pro:
            flat["prolific_completion_url"] = pro["completion_url"]
    kwargs = _coerce(StudyConfig, {k: v for k, v in flat.items() if k != "practice"}, "[study]")
    _check("practice" not in flat, "[study]: put practice settings in a [practice] section")
    practice = PracticeConfig(**_coerce(PracticeConfig, data.get("practice", {}), "[practice]"))
    return validate_config(StudyConfig(**kwargs, practice=practice))


def load_config(path: str | Path | None) -> StudyConfig:
    """Read a study TOML file (None: all defaults); raise ConfigError with a one-line reason."""
    if path is None:
        return validate_config(StudyConfig())
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def with_overrides(cfg: StudyConfig, **changes: Any) -> StudyConfig:
    """Return a validated copy of `cfg` with some fields replaced."""
    return validate_config(replace(cfg, **changes))
