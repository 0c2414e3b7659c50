"""Declared exclusion rules (contracts.exclusion) on hand-made raters, and on a live study database (study.exclusion)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from tests.study.helpers import answer_all, make_service, rater_at_tasks

from contracts.exclusion import ExclusionRules, evaluate, excluded_raters, rater_measures, sensitivity_variants
from study.config import ConfigError, load_config
from study.examples import write_config
from study.exclusion import rater_exclusions, rule_summary

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)
IMI = ExclusionRules(min_catch_accuracy=0.8, min_instruction_seconds=15, min_total_seconds=135, max_total_seconds=2500,
                     max_speeder_fraction=0.25, min_answers_per_side=5, require_practice_passed=True)  # fmt: skip


def _iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rater(rid: str, *, catch_ok=(1, 1), instruction_s=20, total_s=600, speeders=0, sides="AB" * 5, practice=1):
    """Responses and the raters row of one hand-made rater: 10 main answers (choices `sides`), 2 catch trials."""
    rows = []
    for i, side in enumerate(sides):
        rows.append({"rater_id": rid, "task_id": f"i{i}/dense/true", "choice": side, "correct": "A", "is_catch": 0,
                     "shown_at": _iso(60 + 10 * i), "answered_at": _iso(65 + 10 * i), "speeder": int(i < speeders)})  # fmt: skip
    for j, ok in enumerate(catch_ok):
        rows.append({"rater_id": rid, "task_id": f"c{j}/dense/true/catch", "choice": "A" if ok else "B", "correct": "A",
                     "is_catch": 1, "shown_at": _iso(200 + j), "answered_at": _iso(201 + j), "speeder": 0})  # fmt: skip
    rater = {"rater_id": rid, "consented_at": _iso(0), "instructions_done_at": _iso(instruction_s),
             "completed_at": _iso(total_s), "practice_passed": practice}  # fmt: skip
    return rows, rater


HAND_MADE = {
    "good": {},
    "bad-catch": {"catch_ok": (1, 0)},
    "rushed-instructions": {"instruction_s": 5},
    "too-fast": {"total_s": 100},
    "too-slow": {"total_s": 3000},
    "speeder": {"speeders": 5},
    "always-A": {"sides": "A" * 10},
    "failed-practice": {"practice": 0},
}
EXPECTED_RULE = {
    "bad-catch": "catch_accuracy",
    "rushed-instructions": "instruction_time",
    "too-fast": "total_time",
    "too-slow": "total_time",
    "speeder": "speeders",
    "always-A": "answers_per_side",
    "failed-practice": "practice",
}


@pytest.fixture(scope="module")
def hand_made() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, raters = [], []
    for rid, kwargs in HAND_MADE.items():
        r, rater = _rater(rid, **kwargs)
        rows += r
        raters.append(rater)
    return pd.DataFrame(rows), pd.DataFrame(raters)


def test_each_rule_excludes_exactly_the_rater_made_to_fail_it(hand_made) -> None:
    responses, raters = hand_made
    table = evaluate(rater_measures(responses, raters), IMI)
    for rid in HAND_MADE:
        failed = [c.removeprefix("fails_") for c in table.columns if c.startswith("fails_") and table.loc[rid, c]]
        assert failed == ([EXPECTED_RULE[rid]] if rid in EXPECTED_RULE else []), rid
        assert table.loc[rid, "excluded"] == (rid in EXPECTED_RULE)
    assert excluded_raters(responses, ExclusionRules(), raters) == []  # every rule off: nobody
    # Without the raters table (a CSV alone) the rules it feeds exclude nobody; total time is the task span.
    only_csv = excluded_raters(responses, IMI)
    assert only_csv == ["always-A", "bad-catch", "speeder"]


def test_sensitivity_variants_move_every_declared_threshold(hand_made) -> None:
    variants = sensitivity_variants(IMI)
    assert list(variants)[:2] == ["none", "declared"]
    assert {f"{rule} only" for rule in EXPECTED_RULE.values()} <= set(variants)
    assert variants["stricter"].min_instruction_seconds > IMI.min_instruction_seconds > variants["looser"].min_instruction_seconds
    assert variants["stricter"].max_total_seconds < IMI.max_total_seconds < variants["looser"].max_total_seconds
    responses, raters = hand_made
    only_catch = excluded_raters(responses, variants["catch_accuracy only"], raters)
    assert only_catch == ["bad-catch"]


def test_the_config_declares_the_rules_and_the_admin_table_names_who_they_exclude(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle, exclusion_min_catch_accuracy=1.0, exclusion_min_answers_per_side=1)
    assert svc.config.exclusion.min_catch_accuracy == 1.0
    right, wrong = rater_at_tasks(svc), rater_at_tasks(svc)
    answer_all(svc, right, choose=lambda a: a.correct if a.is_catch else ("A" if a.position % 2 else "B"))
    answer_all(svc, wrong, choose=lambda a: "B" if a.correct == "A" else "A")
    table = rater_exclusions(svc.db_path, svc.config.exclusion)
    summary = {row["rule"]: row for row in rule_summary(table, svc.config.exclusion)}
    assert summary["catch_accuracy"]["raters"] == wrong and summary["catch_accuracy"]["excluded"] == 1
    assert summary["speeders"]["active"] is False and summary["speeders"]["excluded"] == 0
    assert summary["any rule"]["excluded"] == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("[exclusion]\nmin_catch_accuracy = 1.5\n")
    with pytest.raises(ConfigError, match="min_catch_accuracy must be between 0 and 1"):
        load_config(bad)
    with pytest.raises(ConfigError, match="unknown key 'min_catch'"):
        load_config(write_config(tmp_path / "u.toml", exclusion_min_catch=1))
