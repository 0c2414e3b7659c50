"""Degenerate and hostile inputs: each gets a refusal, a warning or escaping (issue 12, item 7)."""
from __future__ import annotations

import os
import stat

import pandas as pd
import pytest
from analysis.examples import responses_frame

from analysis.io import add_outcomes, validate_responses
from analysis.pipeline import degenerate_cases, run_analysis, summarize


def study(rows):
    return validate_responses(responses_frame(rows))


# Two raters, two images, both conditions; enough for every table.
BASE = [("r1", "i1/spade", "i1", "spade", "A", "A"), ("r2", "i1/spade", "i1", "spade", "B", "A"),
        ("r1", "i2/dense", "i2", "dense", "B", "B"), ("r2", "i2/dense", "i2", "dense", "undecided", "A"),
        ("r1", "i2/spade", "i2", "spade", "A", "A"), ("r2", "i1/dense", "i1", "dense", "A", "B")]


def test_hostile_rater_ids_are_escaped_and_outputs_follow_the_umask(tmp_path):
    """`|` stays inside its Markdown cell, a formula-like id is neutralised in CSV, files get the umask's mode."""
    rows = [(("a|b" if r == "r1" else '=HYPERLINK("http://x","y")'), *rest) for r, *rest in BASE]
    old = os.umask(0o027)
    try:
        run_analysis(study(rows), tmp_path, fit_models=False, n_boot=0, n_permutations=99)
    finally:
        os.umask(old)
    md = (tmp_path / "raters.md").read_text().splitlines()
    row = next(ln for ln in md if "a\\|b" in ln)
    assert row.count("|") - row.count("\\|") == md[0].count("|")  # the id stays one cell
    csv = (tmp_path / "raters.csv").read_text()
    assert "'=HYPERLINK" in csv and "\n=HYPERLINK" not in csv and "\n\"=HYPERLINK" not in csv
    # numbers are untouched: a negative difference stays a number
    assert pd.read_csv(tmp_path / "items.csv")["net_difference"].dtype.kind == "f"
    assert "a|b" in (tmp_path / "raters.tex").read_text()  # | is plain text in LaTeX's default T1 tables
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert set(modes.values()) == {0o640}, modes  # 0666 minus the umask, not mkstemp's 0600


@pytest.mark.slow
def test_one_rater_reports_no_model_and_no_bootstrap(tmp_path):
    rows = [("solo", *rest) for _, *rest in BASE if _ == "r1"]
    summary, _, _ = summarize(study(rows), fit_models=True, n_boot=200, n_permutations=99)
    assert any("only 1 rater" in w for w in summary["warnings"])
    models = summary["models"]
    assert all(not models[k]["fitted"] for k in ("mixed_net", "mixed_decided", "gee_net", "gee_decided"))
    assert models["bootstrap"] is None
    assert summary["difference"]["agreement"]["robust_ci"] is None  # no zero-width bootstrap interval
    run_analysis(study(rows), tmp_path, fit_models=True, n_boot=200, n_permutations=99)
    report = (tmp_path / "report.md").read_text()
    assert "## Warnings" in report and "only 1 rater" in report


def test_every_dense_rating_undecided_warns_of_separation():
    rows = []
    for r in range(6):
        for i in range(8):
            cond = ("dense", "spade")[(r + i) % 2]
            choice = "undecided" if cond == "dense" else "AB"[(r * i) % 2]
            rows.append((f"r{r}", f"i{i}/{cond}", f"i{i}", cond, choice, "A"))
    summary, _, _ = summarize(study(rows), fit_models=True, n_boot=50, n_permutations=99)
    warned = [w for w in summary["warnings"] if w.startswith("separation in decided")]
    assert warned and "every dense rating has decided = 0" in warned[0]
    for key in ("mixed_decided", "gee_decided", "mixed_net", "gee_net"):
        assert not summary["models"][key]["fitted"] and "separation" in summary["models"][key]["reason"]
    assert summary["primary"]["decided"]["estimate"] == pytest.approx(summary["spade"]["decision_rate"])


def test_a_variance_at_zero_is_reported_as_a_singular_fit():
    main = add_outcomes(study(BASE))  # no outcome constant within a condition
    summary = {"models": {"mixed_net": {"fitted": True, "rater_sd": 0.004, "item_sd": 0.6, "sd": 0.3}},
               "primary": {"net": {}}}
    warnings = degenerate_cases(main, summary)
    assert summary["models"]["mixed_net"]["singular"][0] == "rater"
    assert any(w.startswith("mixed_net: singular fit, no rater") for w in warnings)


def test_a_zero_width_bootstrap_interval_is_dropped_with_a_warning():
    rows = [("r1", "i1/spade", "i1", "spade", "A", "A"), ("r2", "i1/dense", "i1", "dense", "B", "A"),
            ("r1", "i2/dense", "i2", "dense", "undecided", "A"), ("r2", "i2/spade", "i2", "spade", "A", "A")]
    summary, _, _ = summarize(study(rows), fit_models=True, n_boot=50, n_permutations=99)
    assert summary["difference"]["agreement"]["robust_ci"] is None
    assert summary["models"]["bootstrap"]["raters_and_items"]["agreement"]["ci"] is None
    assert any("every replicate gave the same difference" in w for w in summary["warnings"])
    assert any(w.startswith("only 2 raters and 2 images") for w in summary["warnings"])
