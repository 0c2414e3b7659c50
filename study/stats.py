"""The admin page's summaries, computed in SQL from the live database.

Agreement with Score-CAM is `choice == correct` among decided answers (the paper's
"agreement"); the decision rate is the share of answers other than "Can't decide";
their product is the paper's net attribution agreement. Pairs of raters on the same
task who both decided agree when both picked the same region (compared through
`correct`, since each rater saw their own A/B layout), as in the review's table.
"""
from __future__ import annotations

import sqlite_utils

from contracts.manifest import CONDITIONS

_CONDITION_SQL = """
SELECT t.condition AS condition,
       COUNT(DISTINCT t.task_id) AS tasks,
       COUNT(e.task_id) AS ratings,
       COALESCE(SUM(e.choice != 'undecided'), 0) AS decided,
       COALESCE(SUM(e.choice != 'undecided' AND e.choice = e.correct), 0) AS agree_scorecam
FROM tasks t LEFT JOIN responses_export e ON e.task_id = t.task_id
WHERE t.is_catch = 0
GROUP BY t.condition
"""

_TASK_SQL = """
SELECT t.task_id, t.item_id, t.condition, t.target,
       (SELECT COUNT(*) FROM responses_export e WHERE e.task_id = t.task_id) AS answered,
       (SELECT COUNT(*) FROM assignments a LEFT JOIN responses r ON r.assignment_id = a.assignment_id
         WHERE a.task_id = t.task_id AND r.response_id IS NULL) AS pending
FROM tasks t WHERE t.is_catch = 0 ORDER BY t.task_id
"""

_PAIRS_SQL = """
WITH d AS (SELECT task_id, condition, rater_id, (choice = correct) AS hit
           FROM responses_export WHERE is_catch = 0 AND choice != 'undecided')
SELECT x.condition AS condition, SUM(x.hit = y.hit) AS agree, SUM(x.hit != y.hit) AS disagree
FROM d x JOIN d y ON x.task_id = y.task_id AND x.rater_id < y.rater_id
GROUP BY x.condition
"""

_RATER_SQL = """
SELECT r.rater_id, r.source, r.created_at, r.consented_at, r.practice_rounds, r.practice_passed,
       r.completed_at, r.completion_code, r.revoked_at,
       (SELECT COUNT(*) FROM assignments a WHERE a.rater_id = r.rater_id) AS assigned,
       (SELECT COUNT(*) FROM responses_export e WHERE e.rater_id = r.rater_id) AS answered,
       (SELECT COUNT(*) FROM responses_export e WHERE e.rater_id = r.rater_id AND e.is_catch = 0 AND e.condition = 'dense') AS dense,
       (SELECT COUNT(*) FROM responses_export e WHERE e.rater_id = r.rater_id AND e.is_catch = 0 AND e.condition = 'spade') AS spade,
       (SELECT COUNT(*) FROM responses_export e WHERE e.rater_id = r.rater_id AND e.is_catch = 1) AS catch_answered,
       (SELECT COUNT(*) FROM responses_export e WHERE e.rater_id = r.rater_id AND e.is_catch = 1 AND e.choice = e.correct) AS catch_correct
FROM raters r ORDER BY r.created_at, r.rater_id
"""


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def rater_rows(db: sqlite_utils.Database) -> list[dict]:
    """Return one row per rater: source, stage timestamps, answer counts per condition, catch accuracy."""
    rows = list(db.query(_RATER_SQL))
    for row in rows:
        row["catch_accuracy"] = _ratio(row["catch_correct"], row["catch_answered"])
    return rows


def summarize(db: sqlite_utils.Database, ratings_per_task: int) -> dict:
    """Return progress per condition and per task, raters, decision rate and agreement per condition."""
    pairs = {r["condition"]: r for r in db.query(_PAIRS_SQL)}
    conditions = []
    by_cond = {r["condition"]: r for r in db.query(_CONDITION_SQL)}
    tasks = list(db.query(_TASK_SQL))
    for cond in CONDITIONS:
        r = by_cond.get(cond, {"tasks": 0, "ratings": 0, "decided": 0, "agree_scorecam": 0})
        decision_rate = _ratio(r["decided"], r["ratings"])
        agreement = _ratio(r["agree_scorecam"], r["decided"])
        p = pairs.get(cond, {"agree": 0, "disagree": 0})
        conditions.append(
            {
                "condition": cond,
                "tasks": r["tasks"],
                "ratings": r["ratings"],
                "target_ratings": r["tasks"] * ratings_per_task,
                "tasks_at_k": sum(1 for t in tasks if t["condition"] == cond and t["answered"] >= ratings_per_task),
                "decision_rate": decision_rate,
                "agreement": agreement,
                "net_agreement": None if decision_rate is None or agreement is None else decision_rate * agreement,
                "pairs_agree": p["agree"] or 0,
                "pairs_disagree": p["disagree"] or 0,
            }
        )
    raters = rater_rows(db)
    totals = {
        "raters": len(raters),
        "completed": sum(1 for r in raters if r["completed_at"]),
        "responses": db.execute("SELECT COUNT(*) FROM responses").fetchone()[0],
        # Refusals naming a rater are events; anonymous ones are counted per reason (refusal_counts).
        "refusals": db.execute("SELECT COUNT(*) FROM events WHERE kind = 'refused'").fetchone()[0]
        + db.execute("SELECT COALESCE(SUM(n), 0) FROM refusal_counts").fetchone()[0],
    }
    return {"conditions": conditions, "tasks": tasks, "raters": raters, "totals": totals}
