"""`study` never imports torch, spade or generation, not even transitively (the app, the CLI and every module)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from study.examples import make_bundle, write_config
from tests.study.helpers import REPO

STUDY_MODULES = sorted(
    f"study.{p.stem}" for p in (REPO / "study").glob("*.py") if p.stem not in ("__init__", "app")
)


def _loaded_after(code: str, env: dict | None = None) -> dict:
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'lucent', 'spade', 'generation'))))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_study_modules_do_not_import_torch() -> None:
    assert "study.service" in STUDY_MODULES and "study.cli" in STUDY_MODULES
    loaded = _loaded_after("\n".join(f"import {m}" for m in STUDY_MODULES) + "\nimport spade_study.cli")
    # Not even `generation`: the manifest schema is `contracts.manifest`.
    assert loaded == [], loaded


def test_running_the_app_does_not_import_torch(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", n_items=6)
    config = write_config(tmp_path / "s.toml", tasks_per_rater=2, catch_per_rater=1)
    env = {
        "SPADE_STUDY_BUNDLE": str(bundle),
        "SPADE_STUDY_DB": str(tmp_path / "s.db"),
        "SPADE_STUDY_CONFIG": str(config),
        "PATH": "/usr/bin:/bin",
    }
    code = (
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(REPO / 'study' / 'app.py')!r}, default_timeout=60)\n"
        "at.query_params['token'] = 'unknown'\n"
        "at.run()\n"
        "assert at.title[0].value == 'Cannot continue', at.title\n"
    )
    loaded = _loaded_after(code, env=env)
    assert not [m for m in loaded if m.split(".")[0] in ("torch", "torchvision", "lucent", "spade")], loaded
