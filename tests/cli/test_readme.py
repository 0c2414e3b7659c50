"""The README's commands run as written, and it documents every config key with its default.

Each ```bash block of the README is preceded by a marker: `<!-- readme-test: run -->` blocks
are executed here (in a scratch folder beside the repository, with the project's `.venv/bin`
first on PATH), `<!-- readme-test: skip: why -->` blocks say which test covers them instead.
Its TOML blocks must validate as generation configs.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<mark>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)


def blocks(lang: str) -> list[tuple[str | None, str]]:
    """(marker, body) of every fenced block of one language in the README."""
    return [(m["mark"], m["body"]) for m in BLOCK.finditer(README) if m["lang"] == lang]


def test_every_bash_block_is_marked_run_or_skip_with_a_reason() -> None:
    bash = blocks("bash")
    assert len(bash) >= 5
    for mark, body in bash:
        assert mark is not None, f"unmarked bash block:\n{body}"
        assert mark == "run" or (mark.startswith("skip: ") and len(mark) > 20), f"bad marker {mark!r}"


RUN_BLOCKS = [body for mark, body in blocks("bash") if mark == "run" and not body.lstrip().startswith("make ")]


@pytest.mark.slow
@pytest.mark.parametrize("body", RUN_BLOCKS, ids=[b.split()[1] if len(b.split()) > 1 else b for b in RUN_BLOCKS])
def test_readme_block_runs(body: str, tmp_path: Path) -> None:
    # `../shared/...` paths in the README are relative to the repository root.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    for produced in re.findall(r"--out (\S+\.pt)", body):
        (REPO / produced).unlink(missing_ok=True)
    assert proc.returncode == 0, f"README block failed:\n{body}\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"


def test_readme_toml_blocks_are_valid_generation_configs() -> None:
    from generation.config import config_from_dict

    tomls = blocks("toml")
    assert tomls
    for _, body in tomls:
        config_from_dict(tomllib.loads(body))  # raises ConfigError with the key on a bad block


def test_readme_lists_every_generation_and_study_config_key_with_its_default() -> None:
    from generation.config import GenerationConfig, config_from_dict

    # The generation reference is the README's TOML block that holds every section.
    reference = next(body for _, body in blocks("toml") if "[visualization]" in body and "[spade]" in body)
    parsed = tomllib.loads(reference)
    defaults = config_from_dict({"data": {"root": "x"}}).model_dump()
    for section, field in GenerationConfig.model_fields.items():
        header = reference.index(f"[{section}]")
        rest = reference[header + 1:]
        text = rest[: rest.index("\n[")] if "\n[" in rest else rest
        for key in field.annotation.model_fields:
            assert re.search(rf"^#? ?{key} = ", text, re.M), f"README does not document [{section}] {key}"
            if key in parsed.get(section, {}) and not (section == "data" and key == "root"):
                assert parsed[section][key] == defaults[section][key], f"README's default of [{section}] {key} is wrong"
    from study.config import StudyConfig

    study, practice = StudyConfig(), StudyConfig().practice
    for key, default in [(k, getattr(study, k)) for k in ("identity", "tasks_per_rater", "ratings_per_task",
                                                           "catch_per_rater", "confidence", "seed", "stale_minutes")] + \
                        [(k, getattr(practice, k)) for k in ("trials", "min_correct", "max_rounds")]:
        shown = str(default).lower() if isinstance(default, bool) else f'"{default}"' if isinstance(default, str) \
            else f"{default:g}" if isinstance(default, float) else str(default)
        assert re.search(rf"\| `{key}` \| {re.escape(shown)} \|", README), f"README: study key {key} with default {shown}"
