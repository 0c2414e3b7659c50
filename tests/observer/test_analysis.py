"""The machine's numbers in `spade-study analyze --observer` (summary.json, report.md); bad paths refused."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.observer import condition_summary, read_results, write_results
from observer.networks import embedding_key
from observer.runner import observe_bundle
from spade_study.cli import main as spade_study
from tests.observer.helpers import manifest, responses_for, result_row


def analyze(tmp_path: Path, bundle: Path, observer: Path) -> tuple[int, Path]:
    responses = tmp_path / "responses.csv"
    responses_for(bundle).to_csv(responses, index=False)
    out = tmp_path / "analysis"
    rc = spade_study(["analyze", "--responses", str(responses), "--out", str(out), "--observer", str(observer),
                      "--no-models", "--bootstrap", "0", "--permutations", "199", "--quiet"])
    return rc, out


@pytest.mark.slow
def test_the_observer_s_numbers_appear_in_summary_and_report(tmp_path: Path, bundle_copy: Path, capsys, embedder,
                                                             one_torch_thread) -> None:
    csv_path = observe_bundle(bundle_copy, lambda: embedder, embedding_key("efficientnet_lite0", None, None),
                              "efficientnet_lite0", name="efficientnet_lite0", progress=False)["csv"]
    rows, _ = read_results(csv_path)
    rc, out = analyze(tmp_path, bundle_copy, bundle_copy)
    assert rc == 0, capsys.readouterr().err
    assert "machine observer (efficientnet_lite0, all 8 tasks): dense decision rate" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    obs = summary["observer"]
    assert obs["network"] == "efficientnet_lite0" and obs["tasks"] == 8 and obs["file"] == str(csv_path)
    expected = condition_summary(rows)
    machine = {r["task_id"]: r["choice"] for r in rows}
    ratings = responses_for(bundle_copy).to_dict("records")
    for cond in ("dense", "spade"):
        e, got = expected[cond], obs[cond]
        assert (got["n"], got["decided"], got["correct"]) == (e["tasks"], e["decided"], e["correct"])
        assert got["decision_rate"] == pytest.approx(e["decision_rate"])
        if e["agreement"] is not None:
            assert got["agreement"] == pytest.approx(e["agreement"])
        # The responses rate 2 tasks per item and condition: the machine's rated-task numbers are over those.
        assert got["rated"]["n"] == 4
        # Same region: among ratings where rater and machine both decided, counted here by hand.
        both = [(r["choice"] == r["correct"], machine[r["task_id"]] == "target") for r in ratings
                if r["condition"] == cond and r["choice"] != "undecided" and machine[r["task_id"]] != "undecided"]
        assert got["same_choice"]["ratings"] == len(both)
        assert got["same_choice"]["same"] == sum(h == m for h, m in both)
    assert any(obs[c]["same_choice"]["ratings"] for c in ("dense", "spade"))  # the check above can fail
    report = (out / "report.md").read_text()
    assert "## Machine observer" in report and "| dense | machine, all tasks | 4 |" in report


@pytest.mark.parametrize("setup, message", [
    ("empty", "no observer results here"),
    ("two", "several observer results (a.csv, b.csv)"),
    ("other_bundle", "no task in common with the responses"),
])
def test_bad_observer_paths_are_one_error_line(tmp_path: Path, bundle_copy: Path, capsys, setup: str, message: str) -> None:
    items = [i["id"] for i in manifest(bundle_copy)["items"]]
    if setup == "two":
        for name in ("a", "b"):
            write_results(bundle_copy, name, [result_row(items[0], "dense", "true", "target")], {})
    elif setup == "other_bundle":
        write_results(bundle_copy, "a", [result_row("elsewhere", "dense", "true", "target")], {})
    rc, out = analyze(tmp_path, bundle_copy, bundle_copy)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error:") and message in err and "\n" not in err, err
    assert not (out / "summary.json").exists()
