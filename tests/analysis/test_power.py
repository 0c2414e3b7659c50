"""Power simulation: the injected planner is used, rates come out as asked, a run resumes, effects are detected."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from analysis.examples import simple_planner

from analysis.cli import main as analyze
from analysis.power import RaterModel, marginal_intercept, run_power, simulate_responses
from scipy.special import expit


class SpyPlanner:
    """The test planner, recording how it is called."""

    def __init__(self):
        self.calls = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return simple_planner(**kwargs)


def test_marginal_intercept_keeps_the_average_rate():
    for p, sd in ((0.874, 0.7), (0.2, 1.5), (0.5, 0.3)):
        b = marginal_intercept(p, sd)
        z = np.random.default_rng(0).standard_normal(400_000)
        assert expit(b + sd * z).mean() == pytest.approx(p, abs=0.003)
    assert marginal_intercept(0.736, 0) == pytest.approx(np.log(0.736 / 0.264))


def test_simulated_raters_answer_at_the_requested_rates():
    # Large rater and item spreads (log-odds SD 1 each): left uncorrected they would pull the spade
    # decision rate from 87.4% to about 80%. Many items, so that the items drawn average out.
    plan = simple_planner(n_raters=300, tasks_per_rater=40, n_items=400, seed=1)
    df = simulate_responses(plan, RaterModel(rater_sd=1.0, item_sd=1.0), np.random.default_rng(1))
    assert len(df) == 12_000 and set(df["choice"]) == {"A", "B", "undecided"}
    for cond, dec, agr in (("dense", 276 / 358, 203 / 276), ("spade", 339 / 388, 271 / 339)):
        sub = df[df["condition"] == cond]
        decided = sub[sub["choice"] != "undecided"]
        assert (sub["choice"] != "undecided").mean() == pytest.approx(dec, abs=0.02)
        assert (decided["choice"] == decided["correct"]).mean() == pytest.approx(agr, abs=0.02)
    # the planner's A/B sides are kept: choosing the target's region means pressing its letter
    assert (df["correct"].to_numpy() == np.array([r["correct"] for r in plan])).all()


def test_power_uses_the_planner_and_resumes(tmp_path):
    spy = SpyPlanner()
    out = tmp_path / "power"
    kw = dict(tasks_per_rater=20, n_items=40, ratings_per_task=2, seed=5, progress=False)
    first = run_power(spy, [6, 10], 2, out, **kw)
    assert len(spy.calls) == 4
    assert {c["n_raters"] for c in spy.calls} == {6, 10}
    assert all(set(c) == {"n_raters", "tasks_per_rater", "n_items", "ratings_per_task", "seed"} for c in spy.calls)
    assert all(c["tasks_per_rater"] == 20 and c["n_items"] == 40 for c in spy.calls)
    assert list(first["raters"]) == [6, 10] and list(first["ratings"]) == [120, 200]
    # Interrupted mid-line: the broken record is redone, the others are kept.
    lines = (out / "power_sims.jsonl").read_text().splitlines()
    (out / "power_sims.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    second = run_power(spy, [6, 10], 3, out, **kw)
    assert len(spy.calls) == 4 + 1 + 2  # the cut record, then sim 2 for both counts
    records = [json.loads(ln) for ln in (out / "power_sims.jsonl").read_text().splitlines() if ln.endswith("}")]
    assert sorted((r["raters"], r["sim"]) for r in records) == [(6, 0), (6, 1), (6, 2), (10, 0), (10, 1), (10, 2)]
    assert list(second["sims"]) == [3, 3]
    assert (out / "power.csv").is_file() and "power %" in (out / "power.md").read_text()
    # Same settings, same seeds: a fresh folder gives the same results.
    again = run_power(simple_planner, [6], 3, tmp_path / "again", **kw)
    assert again.equals(second[second["raters"] == 6])
    with pytest.raises(ValueError, match="other settings"):
        run_power(spy, [6], 1, out, **{**kw, "seed": 6})


def test_power_separates_a_large_effect_from_none(tmp_path):
    kw = dict(tasks_per_rater=20, n_items=40, ratings_per_task=2, seed=0, progress=False)
    big = RaterModel(decision={"dense": 0.6, "spade": 0.95}, agreement={"dense": 0.55, "spade": 0.9})
    null = RaterModel(decision={"dense": 0.8, "spade": 0.8}, agreement={"dense": 0.75, "spade": 0.75})
    strong = run_power(simple_planner, [12], 3, tmp_path / "big", model=big, **kw)
    assert strong["power"].item() == 1.0
    none = run_power(simple_planner, [12], 5, tmp_path / "null", model=null, **kw)
    assert none["power"].item() <= 1 / 5


def test_power_command(tmp_path, capsys):
    out = tmp_path / "cmd"
    argv = ["power", "--raters", "6", "--tasks-per-rater", "10", "--items", "30", "--sims", "2",
            "--rater-counts", "6", "--out", str(out), "--quiet"]
    assert analyze(argv, assign=simple_planner) == 0
    printed = capsys.readouterr().out
    assert "Power of the primary test" in printed and "power % [95% CI]" in printed
    assert (out / "power.md").is_file()
    # Without the study's planner the command says so, in one line.
    assert analyze(argv, assign=None) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "planner" in err
    # The planner's own refusals and bad arguments: one line each.
    def refusing(**kwargs):
        raise ValueError("tasks_per_rater + catch_per_rater = 13 exceeds n_items = 10:\n a rater never sees an image twice")
    assert analyze(argv[:-3] + ["--out", str(tmp_path / "x"), "--quiet"], assign=refusing) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exceeds n_items" in err
    assert analyze(["power", "--raters", "0", "--tasks-per-rater", "5"], assign=simple_planner) == 2
    assert "must be >= 1" in capsys.readouterr().err
    assert analyze(["power", "--raters", "6", "--tasks-per-rater", "5", "--decision", "0.5"], assign=simple_planner) == 2
    assert "DENSE,SPADE" in capsys.readouterr().err


def test_spade_study_analyze_power_runs_the_study_planner(tmp_path):
    """Through the dispatcher, `analyze power` gets study.assignment.simulate_assignments (catch trials and all)."""
    out = tmp_path / "real"
    proc = subprocess.run([sys.executable, "-m", "spade_study.cli", "analyze", "power", "--raters", "6",
                           "--tasks-per-rater", "10", "--items", "30", "--sims", "2", "--rater-counts", "6",
                           "--out", str(out), "--quiet"], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(ln) for ln in (out / "power_sims.jsonl").read_text().splitlines()]
    # 6 raters x 10 main tasks: the planner's catch trials are left out of the test
    assert [r["ratings"] for r in records] == [60, 60] and all(r["fitted"] for r in records)


def test_power_is_two_sided(tmp_path):
    """A SPADE that is much worse than dense is detected too (the rule used to count only SPADE > dense)."""
    kw = dict(tasks_per_rater=20, n_items=40, ratings_per_task=2, seed=0, progress=False)
    worse = RaterModel(decision={"dense": 0.95, "spade": 0.6}, agreement={"dense": 0.9, "spade": 0.55})
    table = run_power(simple_planner, [12], 3, tmp_path / "worse", model=worse, **kw)
    assert table["power"].item() == 1.0 and table["power_positive"].item() == 0.0
    records = [json.loads(ln) for ln in (tmp_path / "worse" / "power_sims.jsonl").read_text().splitlines()]
    assert all(r["p"] < 0.05 and r["estimate"] < 0 for r in records)


def test_task_effects_make_ratings_of_one_task_alike():
    plan = simple_planner(n_raters=200, tasks_per_rater=30, n_items=400, ratings_per_task=4, seed=2)
    spread = {}
    for sd in (0.0, 2.0):
        df = simulate_responses(plan, RaterModel(rater_sd=0.0, item_sd=0.0, task_sd=sd), np.random.default_rng(2))
        hit = (df["choice"] == df["correct"]).astype(float)
        per_task = hit.groupby(df["task_id"]).agg(["mean", "size"])
        spread[sd] = per_task.loc[per_task["size"] >= 3, "mean"].var()
        # the expected rates are kept whatever the task spread
        assert hit[df["condition"] == "spade"].mean() == pytest.approx(271 / 388, abs=0.03)
    assert spread[2.0] > 1.4 * spread[0.0]  # measured: 0.119 vs 0.067
