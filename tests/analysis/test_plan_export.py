"""The pre-registration (`analyze plan`), its check in the report (`analyze --plan`), and the data release."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from analysis.examples import paper_responses, responses_frame, simple_planner, write_csv, write_study_db

from analysis.cli import main as analyze
from analysis.plan import PlanError, parse_plan
from contracts.responses import CODEBOOK

REPO = Path(__file__).resolve().parents[2]
CONFIG = """
[study]
tasks_per_rater = 6
ratings_per_task = 2
catch_per_rater = 1

[exclusion]
min_catch_accuracy = 0.8
min_total_seconds = 135
max_speeder_fraction = 1.0
"""
# Two raters, both conditions, one catch trial each (r2 misses it).
TINY = [("r1", "i1/spade", "i1", "spade", "A", "A"), ("r2", "i1/spade", "i1", "spade", "B", "A"),
        ("r1", "i2/dense", "i2", "dense", "B", "B"), ("r2", "i2/dense", "i2", "dense", "undecided", "A"),
        ("r1", "i2/spade", "i2", "spade", "A", "A"), ("r2", "i1/dense", "i1", "dense", "A", "B"),
        ("r1", "k1", "i3", "dense", "A", "A", 1), ("r2", "k2", "i3", "dense", "B", "A", 1)]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_plan_states_the_primary_test_exclusions_power_and_stopping_rule(tmp_path, capsys):
    config = write(tmp_path / "study.toml", CONFIG)
    plan_path = tmp_path / "plan.md"
    assert analyze(["plan", "--config", str(config), "--out", str(plan_path), "--raters", "24", "--power", "0.95"]) == 0
    text = plan_path.read_text()
    for phrase in ("**net agreement**", "alpha = 0.05, two-sided", "Only this test is confirmatory", "**secondary**",
                   "catch accuracy below 0.8", "less than 135 s from consent to completion",
                   "24 raters who complete all tasks", "power 95.0%", "Stopping rule", "no interim analysis",
                   "Replication criterion", "d33"):
        assert phrase in text, phrase
    assert "speeders" not in text  # a rule at its "off" value excludes nobody and is not stated
    plan = parse_plan(text)
    assert plan["exclusion"] == {"min_catch_accuracy": 0.8, "min_total_seconds": 135}
    assert plan["design"]["tasks_per_rater"] == 6 and plan["primary"]["alpha"] == 0.05
    assert "power 95.0%" in capsys.readouterr().out


def test_plan_without_exclusion_section_states_the_catch_rule_and_simulates_power(tmp_path):
    from analysis.plan import main as plan_main

    config = write(tmp_path / "study.toml", "[study]\ntasks_per_rater = 6\ncatch_per_rater = 2\n")
    plan_path = tmp_path / "plan.md"
    assert plan_main(["--config", str(config), "--out", str(plan_path), "--raters", "6", "--items", "12",
                      "--sims", "6", "--quiet"], assign=simple_planner) == 0
    plan = parse_plan(plan_path.read_text())
    assert plan["exclusion"] == {"min_catch_accuracy": 1.0} and not plan["exclusion_declared"]
    assert "catch-trial rule of the analysis applies" in plan_path.read_text()
    assert plan["power"]["sims"] == 6 and 0 <= plan["power"]["power_lo"] <= plan["power"]["power"] <= 1
    assert (tmp_path / "plan-power" / "power_sims.jsonl").is_file()  # resumable, beside the plan


@pytest.mark.parametrize("config,message", [
    ("[study\n", "not valid TOML"),
    ("[exclusion]\nmin_catch = 0.8\n", "unknown key 'min_catch'"),
    ("[study]\ntasks_per_rater = -1\n", "tasks_per_rater must be a non-negative integer"),
])
def test_plan_refuses_a_bad_config(tmp_path, capsys, config, message):
    path = write(tmp_path / "bad.toml", config)
    assert analyze(["plan", "--config", str(path), "--out", str(tmp_path / "plan.md"), "--power", "0.9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "plan.md").exists()


@pytest.mark.slow
def test_report_applies_the_plans_exclusions_and_flags_deviations(tmp_path, capsys):
    """The plan's declared rules are evaluated as the study app does (contracts.exclusion); deviations listed."""
    config = write(tmp_path / "study.toml", CONFIG + "min_instruction_seconds = 15\n")
    plan_path = tmp_path / "plan.md"
    assert analyze(["plan", "--config", str(config), "--out", str(plan_path), "--raters", "3", "--power", "0.9"]) == 0
    csv = write_csv(responses_frame(TINY), tmp_path / "responses.csv")
    out = tmp_path / "analysis"
    assert analyze(["--responses", str(csv), "--out", str(out), "--plan", str(plan_path), "--no-models", "--quiet",
                    "--permutations", "999"]) == 0
    assert "excluded 1 rater(s) failing the plan's exclusion rules: r2" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    # r2 missed its one catch trial (accuracy 0 < 0.8); both raters' tasks span 5+ minutes (> 135 s)
    assert summary["input"]["plan_exclusions"]["excluded"] == {"catch_accuracy": ["r2"], "total_time": []}
    assert summary["input"]["excluded_raters"] == ["r2"] and summary["input"]["analysed_raters"] == 1
    report = (out / "report.md").read_text()
    assert "## Pre-registration" in report and "The plan as written" in report and "> # Pre-registration" in report
    assert "| failing the plan's rule catch_accuracy | 1 | |" in report
    for deviation in ("999 permutations instead of the planned 9999", "2 raters in the data instead of the planned 3",
                      "rule instruction_time could not be evaluated: it needs the raters table"):
        assert deviation in report, deviation
    assert "were not applied" not in report
    broken = write(tmp_path / "notaplan.md", "# my plan\n")
    assert analyze(["--responses", str(csv), "--out", str(tmp_path / "x"), "--plan", str(broken)]) == 2
    assert not (tmp_path / "x").exists()


def test_no_plan_means_exploratory(tmp_path):
    with pytest.raises(PlanError, match="no spade-study-plan JSON block"):
        parse_plan("nothing here")


def test_export_writes_a_release_with_codebook_and_hashes(tmp_path):
    import hashlib

    import pandas as pd

    raw = paper_responses()
    db = write_study_db(raw, tmp_path / "study.db")
    config = write(tmp_path / "study.toml", CONFIG)
    plan = write(tmp_path / "plan.md", "# plan\n")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    write(bundle / "manifest.json", '{"items": []}\n')
    out = tmp_path / "release"
    assert analyze(["export", "--db", str(db), "--out", str(out), "--config", str(config), "--plan", str(plan),
                    "--bundle", str(bundle)]) == 0
    release = json.loads((out / "release.json").read_text())
    for name, digest in release["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    assert set(release["files"]) == {"responses.csv", "codebook.md", "codebook.json", "study.toml", "plan.md"}
    assert release["bundle_manifest"]["sha256"] == hashlib.sha256(b'{"items": []}\n').hexdigest()
    assert release["source"]["sha256"] == hashlib.sha256(db.read_bytes()).hexdigest()
    assert release["counts"] == {"responses": 818, "catch_trials": 72, "raters": 24, "items": 100}
    codebook = json.loads((out / "codebook.json").read_text())
    assert [c["name"] for c in codebook["columns"]] == list(CODEBOOK)
    assert all(f"`{col}`" in (out / "codebook.md").read_text() for col in CODEBOOK)
    data = pd.read_csv(out / "responses.csv", dtype=str, keep_default_na=False)
    assert len(data) == 818 and list(data.columns)[:11] == list(raw.columns)
    assert not data["response_ms"].str.endswith(".0").any()  # stored integers stay integers
    assert (out / "study.toml").read_text() == CONFIG


def test_export_refuses_missing_inputs_and_writes_nothing(tmp_path, capsys):
    csv = write_csv(responses_frame(TINY), tmp_path / "responses.csv")
    out = tmp_path / "release"
    assert analyze(["export", "--responses", str(csv), "--out", str(out), "--config", str(tmp_path / "nope.toml")]) == 2
    assert "error: --config" in capsys.readouterr().err and not out.exists()
    assert analyze(["export", "--responses", str(csv), "--out", str(out), "--bundle", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
def test_spade_study_analyze_plan_runs_the_study_planner(tmp_path):
    """The command-line glue hands the study's planner to `analyze plan` (analysis never imports study)."""
    config = write(tmp_path / "study.toml", "[study]\ntasks_per_rater = 4\ncatch_per_rater = 0\n")
    proc = subprocess.run([sys.executable, "-m", "spade_study.cli", "analyze", "plan", "--config", str(config),
                           "--out", str(tmp_path / "plan.md"), "--raters", "4", "--items", "8", "--sims", "3",
                           "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    plan = parse_plan((tmp_path / "plan.md").read_text())
    assert plan["power"]["sims"] == 3 and plan["exclusion"] == {}
    assert "No rater is excluded" in (tmp_path / "plan.md").read_text()


def test_every_declared_exclusion_rule_has_its_wording():
    from dataclasses import fields

    from analysis.plan import EXCLUSION_WORDING
    from contracts.exclusion import ExclusionRules

    assert set(EXCLUSION_WORDING) == {f.name for f in fields(ExclusionRules)}
