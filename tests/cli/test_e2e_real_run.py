"""End to end on real ImageNet images: generate -> serve -> two raters in headless chromium -> analyze.

EfficientNet-Lite0 with its real weights, at small settings, on ../shared/data/imagenet-sample;
everything goes through the `spade-study` command line and a real Streamlit server, and the
analysis's summary.json is checked against the responses the database holds.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.generation.helpers import small_config, write_toml
from study.examples import write_config
from study.browser import drive_rater, launch_chromium
from tests.study.helpers import serve_study

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "spade_study"]


def run_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run `spade-study ARGS...` and fail the test with its output when it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([*CLI, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"spade-study {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def expected_summary(db: Path) -> dict:
    """Recompute the headline numbers straight from the database's responses (catch trials excluded)."""
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT rater_id, task_id, condition, choice, correct FROM responses_export WHERE is_catch = 0"
    ).fetchall()
    con.close()
    out: dict = {}
    for cond in ("dense", "spade"):
        mine = [r for r in rows if r[2] == cond]
        decided = [r for r in mine if r[3] != "undecided"]
        right = [r for r in decided if r[3] == r[4]]
        # Pairs of raters who both decided on the same task: compare the regions chosen
        # (right or wrong region), not the letters, which are randomized per rater.
        by_task: dict[str, list[bool]] = {}
        for r in decided:
            by_task.setdefault(r[1], []).append(r[3] == r[4])
        agree = disagree = 0
        for picks in by_task.values():
            for i in range(len(picks)):
                for j in range(i + 1, len(picks)):
                    agree += picks[i] == picks[j]
                    disagree += picks[i] != picks[j]
        out[cond] = {"n": len(mine), "decided": len(decided), "correct": len(right),
                     "pairs_agree": agree, "pairs_disagree": disagree}
    return out


@pytest.mark.slow
@pytest.mark.browser
def test_real_run_generate_serve_two_raters_analyze(tmp_path: Path) -> None:
    # 1. generate a bundle from real ImageNet images with the real pretrained model
    bundle = tmp_path / "bundle"
    config = write_toml(tmp_path / "generate.toml", small_config())
    run_cli("generate", str(config), "--out", str(bundle), "--quiet")
    manifest = json.loads((bundle / "manifest.json").read_text())
    items = manifest["items"]
    assert len(items) >= 3
    assert all(it["true_class"] != it["predicted_class"] for it in items)

    # 2. serve it on loopback, invite two raters through the command line
    db = tmp_path / "study.db"
    study_toml = write_config(tmp_path / "study.toml", tasks_per_rater=2, catch_per_rater=1, ratings_per_task=2)
    with serve_study(bundle, db, study_toml, env={"SPADE_STUDY_ADMIN_PASSWORD": "e2e-secret"}) as base:
        links = run_cli("raters", "invite", "--db", str(db), "--n", "2", "--base-url", base + "/").stdout.split()
        assert len(links) == 2 and all(link.startswith(base) and "token=" in link for link in links)

        # 3. two raters from their invite links to their completion codes, in headless chromium
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                codes = []
                for n, link in enumerate(links):
                    page = browser.new_context().new_page()
                    answers = ["A", "B", "undecided"] if n == 0 else ["B", "undecided", "A"]
                    codes.append(drive_rater(page, link, choose=lambda k, a=answers: a[(k - 1) % len(a)],
                                             practice_answer=lambda rnd, trial: "A"))
            finally:
                browser.close()
    assert all(codes) and codes[0] != codes[1]

    con = sqlite3.connect(db)
    stored_codes = sorted(r[0] for r in con.execute("SELECT completion_code FROM raters WHERE completion_code IS NOT NULL"))
    n_responses = con.execute("SELECT COUNT(*) FROM responses_export").fetchone()[0]
    con.close()
    assert stored_codes == sorted(codes)
    assert n_responses == 2 * 3  # two raters x (2 tasks + 1 catch trial), each answered exactly once

    # 4. analyze the database; summary.json must match the responses in the database exactly
    out = tmp_path / "analysis"
    printed = run_cli("analyze", "--db", str(db), "--out", str(out), "--seed", "0", "--bootstrap", "20", "--quiet").stdout
    assert "spade" in printed and "dense" in printed
    summary = json.loads((out / "summary.json").read_text())
    expected = expected_summary(db)
    for cond, exp in expected.items():
        got = summary[cond]
        assert (got["n"], got["decided"]) == (exp["n"], exp["decided"]), cond
        assert (got["pairs_agree"], got["pairs_disagree"]) == (exp["pairs_agree"], exp["pairs_disagree"]), cond
        if exp["n"]:
            assert got["decision_rate"] == pytest.approx(exp["decided"] / exp["n"])
            assert got["net"] == pytest.approx(exp["correct"] / exp["n"])
        if exp["decided"]:
            assert got["agreement"] == pytest.approx(exp["correct"] / exp["decided"])
    assert expected["dense"]["n"] + expected["spade"]["n"] == 4
    assert (out / "report.md").is_file()
