"""The declared exclusion rules evaluated on a live study database (the admin page's table).

The rules and their evaluation live in `contracts.exclusion` (pure pandas), which the analysis
uses too, so the admin page and `spade-study analyze` name the same raters.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd

from contracts.exclusion import RULES, ExclusionRules, evaluate, rater_measures, read_raters
from contracts.responses import COLUMNS


def rater_exclusions(db_path: str | Path, rules: ExclusionRules) -> pd.DataFrame:
    """Per rater (withdrawn ones left out): the measures, one `fails_<rule>` column per rule, and `excluded`."""
    conn = sqlite3.connect(str(db_path), timeout=15)
    try:
        responses = pd.read_sql_query(f"SELECT {', '.join(COLUMNS)} FROM responses_export", conn)
        raters = read_raters(conn)
    finally:
        conn.close()
    measures = rater_measures(responses, raters)
    return measures.join(evaluate(measures, rules))


def rule_summary(table: pd.DataFrame, rules: ExclusionRules) -> list[dict]:
    """One row per rule: its threshold(s), how many raters it excludes, and who."""
    rows = []
    for rule, keys in RULES.items():
        col = f"fails_{rule}"
        who = sorted(table.index[table[col]].tolist()) if col in table else []
        rows.append({
            "rule": rule,
            "threshold": ", ".join(f"{k} = {getattr(rules, k)}" for k in keys),
            "active": rule in rules.active(),
            "excluded": len(who),
            "raters": " ".join(who),
        })  # fmt: skip
    who = sorted(table.index[table["excluded"]].tolist()) if len(table) else []
    rows.append({"rule": "any rule", "threshold": "", "active": bool(rules.active()), "excluded": len(who), "raters": " ".join(who)})
    return rows
