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

from contracts.exclusion import ExclusionRules
from study.strings import check_overrides

IDENTITY_MODES = ("invite", "prolific", "open")

DEFAULT_CONSENT = """\
You are invited to take part in a research study about how people read images
produced by neural-network interpretability tools. You will see {tasks_total} short
picture puzzles, after a short practice; the study takes about 15 minutes.

- Taking part is voluntary; you may stop at any time by closing the page, or withdraw
  with the "Withdraw from the study" button on every page.
- We record only your answers, their timing, and your study identifier. We do not
  record your name, e-mail address or any other personal information.
- If you withdraw, your answers stay in the study's database, marked as withdrawn,
  and are left out of every export and analysis. If you decline, we keep only a note
  that the link declined, with the time.
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
    # A task takes an answer only this long after it was first shown: the answer buttons stay
    # disabled and the server refuses earlier answers, so a double click or tap on one task cannot
    # answer the next one (which appears where the buttons were).
    min_view_seconds: float = 1.0
    speeder_seconds: float = 2.0  # answers faster than this are stored with speeder = 1
    max_raters: int = 0  # open and Prolific modes: most raters enrolled; 0 = no limit
    consent_text: str = DEFAULT_CONSENT
    instructions_text: str = DEFAULT_INSTRUCTIONS
    completion_code: str = ""  # one study-wide code (as Prolific expects); empty: a code per rater
    prolific_completion_url: str = "https://app.prolific.com/submissions/complete?cc={code}"
    prolific_study_id: str = ""  # Prolific mode: the only STUDY_ID accepted (required in that mode)
    practice: PracticeConfig = field(default_factory=PracticeConfig)
    exclusion: ExclusionRules = field(default_factory=ExclusionRules)
    break_every: int = 0  # a break screen after every N task answers; 0 = no breaks
    feedback: bool = False  # an optional free-text feedback box on the end page
    strings: dict[str, str] = field(default_factory=dict)  # [strings]: overrides of study/strings.py's interface strings

    @property
    def tasks_total(self) -> int:
        """Assignments per rater: main tasks plus catch trials."""
        return self.tasks_per_rater + self.catch_per_rater

    def design(self) -> dict[str, Any]:
        """The design keys pinned in the database at first serve (a change needs --allow-design-change)."""
        return {
            "tasks_per_rater": self.tasks_per_rater,
            "ratings_per_task": self.ratings_per_task,
            "catch_per_rater": self.catch_per_rater,
            "practice.trials": self.practice.trials,
            "practice.min_correct": self.practice.min_correct,
            "practice.max_rounds": self.practice.max_rounds,
            "identity": self.identity,
            "min_view_seconds": self.min_view_seconds,
        }

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
    _check(0 <= cfg.min_view_seconds <= 60, f"min_view_seconds must be between 0 and 60, not {cfg.min_view_seconds}")
    _check(cfg.speeder_seconds >= 0, f"speeder_seconds must be >= 0, not {cfg.speeder_seconds}")
    _check(cfg.max_raters >= 0, f"max_raters must be >= 0 (0: no limit), not {cfg.max_raters}")
    _check(
        cfg.identity != "prolific" or cfg.prolific_study_id.strip() != "",
        "identity = 'prolific' needs [prolific] study_id (the STUDY_ID Prolific puts in the link)",
    )
    _check(len(cfg.prolific_study_id) <= 64, "[prolific] study_id is longer than 64 characters")
    _check(cfg.break_every >= 0, f"break_every must be >= 0 (0: no breaks), not {cfg.break_every}")
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
    sections = {"study", "consent", "instructions", "practice", "prolific", "exclusion", "strings"}
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
        _check(set(pro) <= {"completion_code", "completion_url", "study_id"}, "[prolific] takes only `completion_code`, `completion_url` and `study_id`")
        if "study_id" in pro:
            _check(isinstance(pro["study_id"], str), "[prolific] study_id must be a string")
            flat["prolific_study_id"] = pro["study_id"]
        if "completion_code" in pro:
            flat["completion_code"] = pro["completion_code"]
        if "completion_url" in pro:
            flat["prolific_completion_url"] = pro["completion_url"]
    _check("exclusion" not in flat, "[study]: put exclusion rules in an [exclusion] section")
    _check("strings" not in flat, "[study]: put interface strings in a [strings] section")
    kwargs = _coerce(StudyConfig, {k: v for k, v in flat.items() if k != "practice"}, "[study]")
    _check("practice" not in flat, "[study]: put practice settings in a [practice] section")
    practice = PracticeConfig(**_coerce(PracticeConfig, data.get("practice", {}), "[practice]"))
    try:
        exclusion = ExclusionRules.from_dict(data.get("exclusion", {}))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        strings = check_overrides(data.get("strings", {}))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return validate_config(StudyConfig(**kwargs, practice=practice, exclusion=exclusion, strings=strings))


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
