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

REPO = Path(__file__).resolve().parents[1]
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
    from generation.config import GenerationConfig
    from study.config import StudyConfig  # noqa: F401  (the study keys are checked below)

    for section, field in GenerationConfig.model_fields.items():
        for key, sub in field.annotation.model_fields.items():
            assert re.search(rf"`{key}`", README), f"README does not document [{section}] {key}"
            assert f"[{section}]" in README
    for key in ("tasks_per_rater", "ratings_per_task", "catch_per_rater", "identity", "confidence", "completion_code"):
        assert f"`{key}`" in README, f"README does not document the study key {key}"
