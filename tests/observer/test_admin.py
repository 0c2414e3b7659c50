"""The admin page shows the machine observer's numbers beside the raters' (streamlit AppTest, real SQLite)."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from contracts.observer import write_results
from study.config import load_config
from study.examples import write_config
from study.service import StudyService
from tests.observer.helpers import manifest, result_row

APP = Path(__file__).resolve().parents[2] / "study" / "app.py"
PASSWORD = "observer-admin"

pytestmark = pytest.mark.slow


def admin_page(monkeypatch, tmp_path: Path, bundle: Path) -> AppTest:
    """The signed-in admin page of a fresh study on `bundle`."""
    config = write_config(tmp_path / "study.toml", tasks_per_rater=1, catch_per_rater=1)
    StudyService(tmp_path / "study.db", bundle, load_config(config))  # creates the database
    monkeypatch.setenv("SPADE_STUDY_BUNDLE", str(bundle))
    monkeypatch.setenv("SPADE_STUDY_DB", str(tmp_path / "study.db"))
    monkeypatch.setenv("SPADE_STUDY_CONFIG", str(config))
    monkeypatch.setenv("SPADE_STUDY_ADMIN_PASSWORD", PASSWORD)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["page"] = "admin"
    at.run()
    at.text_input(key="admin-password").input(PASSWORD).run()
    at.button(key="admin-sign-in").click().run()
    assert not at.exception, at.exception
    return at


def test_the_machine_s_rates_appear_when_the_bundle_has_results(monkeypatch, tmp_path: Path, bundle_copy: Path) -> None:
    items = [i["id"] for i in manifest(bundle_copy)["items"]]
    # dense: 2 target, 2 other; spade: 4 target (one undecided aside): easy numbers to read back.
    rows = [result_row(i, "dense", t, "target" if t == "true" else "other") for i in items for t in ("true", "predicted")]
    rows += [result_row(i, "spade", t, "undecided" if (i, t) == (items[0], "true") else "target")
             for i in items for t in ("true", "predicted")]
    at = admin_page(monkeypatch, tmp_path, bundle_copy)
    assert "Machine observer on the same tasks" not in [s.value for s in at.subheader]  # no results yet
    write_results(bundle_copy, "hand", rows, {"margin": 0.02})
    at.run()
    assert "Machine observer on the same tasks" in [s.value for s in at.subheader]
    machine = at.dataframe[1].value
    assert list(machine["condition"]) == ["dense", "spade"]
    assert list(machine["decision_rate"]) == [1.0, 0.75]
    assert list(machine["agreement"]) == [0.5, 1.0]
    assert list(machine["observer"]) == ["hand", "hand"]


def test_a_damaged_results_file_is_a_warning_not_a_crash(monkeypatch, tmp_path: Path, bundle_copy: Path) -> None:
    items = [i["id"] for i in manifest(bundle_copy)["items"]]
    csv_path = write_results(bundle_copy, "hand", [result_row(items[0], "dense", "true", "target")], {})
    header, row = csv_path.read_text().splitlines()
    csv_path.write_text(f"{header}\n{row.replace(',target,', ',maybe,')}\n")
    at = admin_page(monkeypatch, tmp_path, bundle_copy)
    assert any("cannot be read" in w.value and "unknown choice 'maybe'" in w.value for w in at.warning)
    assert at.dataframe[0].value is not None  # the raters' table is still there
