"""The observer results file (contracts.observer): written, read back, refused when malformed; no torch."""
from __future__ import annotations

from pathlib import Path

import pytest

from contracts.observer import (COLUMNS, ObserverError, bundle_summaries, condition_summary, find_results,
                                read_results, results_paths, write_results)
from tests.observer.helpers import result_row

ROWS = [result_row("i0", "dense", "true", "target", 0.05, "easy"), result_row("i0", "dense", "predicted", "other", -0.05),
        result_row("i0", "spade", "true", "target", 0.04), result_row("i0", "spade", "predicted", "undecided", 0.01, "impossible")]


def test_round_trip_and_summary(tmp_path: Path) -> None:
    csv_path = write_results(tmp_path, "hand", ROWS, {"margin": 0.02})
    assert csv_path == tmp_path / "observer" / "hand.csv"
    assert csv_path.read_text().splitlines()[0] == ",".join(COLUMNS)
    rows, meta = read_results(csv_path)
    assert [r["choice"] for r in rows] == ["target", "other", "target", "undecided"]
    assert rows[1]["score"] == pytest.approx(-0.05) and meta["tasks"] == 4 and meta["margin"] == 0.02
    s = condition_summary(rows)
    assert s["dense"] == {"tasks": 2, "decided": 2, "correct": 1, "decision_rate": 1.0, "agreement": 0.5,
                          "net_agreement": 0.5, "flagged_easy": 1, "flagged_impossible": 0}
    assert s["spade"]["decision_rate"] == 0.5 and s["spade"]["agreement"] == 1.0 and s["spade"]["flagged_impossible"] == 1
    table = bundle_summaries(tmp_path)
    assert [(r["observer"], r["condition"], r["tasks"]) for r in table] == [("hand", "dense", 2), ("hand", "spade", 2)]
    for where in (tmp_path, tmp_path / "observer", csv_path):
        assert find_results(where) == [csv_path]


def test_a_bundle_without_results_has_no_table(tmp_path: Path) -> None:
    assert bundle_summaries(tmp_path) == []


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace(",target,0.050000", ",maybe,0.050000", 1), "line 2: unknown choice 'maybe'"),
    (lambda t: t.replace("0.050000", "abc", 1), "line 2: score is not a number"),
    (lambda t: t.replace("flag", "flags", 1), "missing column flag"),
    (lambda t: t + t.splitlines()[1] + "\n", "duplicate task_id 'i0/dense/true'"),
])
def test_malformed_files_are_refused_with_one_line(tmp_path: Path, edit, message: str) -> None:
    csv_path = write_results(tmp_path, "hand", ROWS, {})
    csv_path.write_text(edit(csv_path.read_text()))
    with pytest.raises(ObserverError, match=message) as info:
        read_results(csv_path)
    assert "\n" not in str(info.value)


def test_a_csv_without_its_meta_or_of_another_run_is_refused(tmp_path: Path) -> None:
    csv_path, meta_path = results_paths(tmp_path, "hand")
    write_results(tmp_path, "hand", ROWS, {})
    csv_path.write_text("\n".join(csv_path.read_text().splitlines()[:3]) + "\n")
    with pytest.raises(ObserverError, match="2 rows but its meta says 4"):
        read_results(csv_path)
    meta_path.unlink()
    with pytest.raises(ObserverError, match="meta file hand.json is missing"):
        read_results(csv_path)


def test_writing_refuses_bad_rows_and_names(tmp_path: Path) -> None:
    with pytest.raises(ObserverError, match="unknown condition"):
        write_results(tmp_path, "hand", [{**ROWS[0], "condition": "sparse"}], {})
    with pytest.raises(ObserverError, match="results name"):
        write_results(tmp_path, "../escape", ROWS, {})
    assert not (tmp_path / "observer" / "hand.csv").exists()
