"""Fixtures for the analysis tests: responses built to match the paper, study-shaped DBs, a simple planner.

`paper_responses()` builds, deterministically, 746 ratings by 24 raters whose
aggregates are exactly the published ones (388 SPADE ratings, 339 decided, 271
agreeing; 358 dense, 276, 203; rater pairs 275/83 and 247/89). Each task gets
`c` raters choosing the target's region and `w` the other one, so it adds
C(c,2) + C(w,2) agreeing pairs and c*w disagreeing ones. The task mixes below
solve those equations (found once with scipy's MILP, written out here):

    SPADE: 73 x (3,0), 29 x (1,2), 6 x (3,1), 1 x (1,3), 1 x (4,1)
           c = 219+29+18+1+4 = 271, w = 58+6+3+1 = 68,
           agree = 219+29+18+3+6 = 275, disagree = 58+18+3+4 = 83
    dense: 20 x (3,0), 22 x (4,0), 32 x (1,2), 7 x (3,1), 1 x (2,2)
           c = 60+88+32+21+2 = 203, w = 64+7+2 = 73,
           agree = 60+132+32+21+2 = 247, disagree = 64+21+4 = 89

"Can't decide" ratings (49 SPADE, 82 dense) are added to some of these tasks and
as single ratings of other tasks (tasks rated once, no pair). Raters are then
given to tasks so that no rater sees an image twice and every rater has 31 or
32 ratings; A/B sides are randomized per rating, so letters never line up
between raters. Every rater also answers 3 catch trials; rater r23 misses 2.
"""
from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pandas as pd
import sqlite_utils

COLUMNS = ["rater_id", "task_id", "item_id", "condition", "target", "choice", "correct", "is_catch",
           "shown_at", "answered_at", "response_ms"]
SPADE_MIX = {(3, 0): 73, (1, 2): 29, (3, 1): 6, (1, 3): 1, (4, 1): 1}
DENSE_MIX = {(3, 0): 20, (4, 0): 22, (1, 2): 32, (3, 1): 7, (2, 2): 1}
# (undecided added to decided tasks, undecided-only tasks rated once)
SPADE_UNDECIDED = (40, 9)
DENSE_UNDECIDED = (70, 12)
N_RATERS, N_ITEMS, CATCH_PER_RATER = 24, 100, 3
FAILING_RATER = "r23"


def _tasks(mix: dict[tuple[int, int], int], undecided: tuple[int, int]) -> list[list[str]]:
    """Per task, the list of outcomes: 'T' target region, 'O' other region, 'U' can't decide."""
    tasks = [["T"] * c + ["O"] * w for (c, w), k in sorted(mix.items()) for _ in range(k)]
    extra, alone = undecided
    for i in range(extra):  # spread over the tasks, a second round if there are more extras than tasks
        tasks[(i * 7) % len(tasks)].append("U")
    tasks += [["U"] for _ in range(alone)]
    return tasks


def paper_responses(seed: int = 0) -> pd.DataFrame:
    """The 746 + 72 catch responses matching the paper's aggregates, as the study's CSV would hold them (text)."""
    rng = random.Random(seed)
    slots: list[tuple[str, str, str, list[str]]] = []  # (item, condition, target, outcomes)
    for cond, mix, und, offset in (("spade", SPADE_MIX, SPADE_UNDECIDED, 0), ("dense", DENSE_MIX, DENSE_UNDECIDED, 50)):
        tasks = _tasks(mix, und)
        rng.shuffle(tasks)  # spread the task kinds over the images instead of blocks of alike images
        for j, outcomes in enumerate(tasks):
            # 2 targets x 100 items = 200 slots per condition; dense starts half-way so items mix both.
            item = f"item{(j + offset) % N_ITEMS:03d}"
            target = "true" if j < N_ITEMS else "predicted"
            slots.append((item, cond, target, outcomes))
    total = sum(len(o) for *_, o in slots)
    assert total == 746, total
    capacity = {f"r{r:02d}": 31 + (1 if r < total - 31 * N_RATERS else 0) for r in range(N_RATERS)}
    by_item: dict[str, list[tuple[str, str, list[str]]]] = {}
    for item, cond, target, outcomes in slots:
        by_item.setdefault(item, []).append((cond, target, outcomes))
    rows = []
    clock = 1_800_000_000_000  # ms; 2027-01-15, any fixed origin will do
    # Largest items first, each to the raters with the most room left (a Havel-Hakimi-style fill):
    # distinct raters within an item, every rater at capacity at the end.
    for item in sorted(by_item, key=lambda i: (-sum(len(o) for _, _, o in by_item[i]), i)):
        need = sum(len(o) for _, _, o in by_item[item])
        raters = sorted(capacity, key=lambda r: (-capacity[r], r))[:need]
        assert capacity[raters[-1]] > 0, "fixture: raters ran out of room"
        rng.shuffle(raters)
        k = 0
        for cond, target, outcomes in by_item[item]:
            for outcome in outcomes:
                rater = raters[k]
                k += 1
                capacity[rater] -= 1
                correct = rng.choice("AB")
                choice = {"T": correct, "O": "B" if correct == "A" else "A", "U": "undecided"}[outcome]
                rows.append(_row(rater, f"{item}/{cond}/{target}", item, cond, target, choice, correct, 0, clock, rng))
                clock += 60_000
    assert all(v == 0 for v in capacity.values()), capacity
    for r in range(N_RATERS):
        rater = f"r{r:02d}"
        for t in range(CATCH_PER_RATER):
            item = f"item{(r * 3 + t) % N_ITEMS:03d}"
            correct = rng.choice("AB")
            wrong = rater == FAILING_RATER and t < 2
            choice = ("B" if correct == "A" else "A") if wrong else correct
            rows.append(_row(rater, f"{item}/dense/true/catch", item, "dense", "true", choice, correct, 1, clock, rng))
            clock += 60_000
    rng.shuffle(rows)
    return pd.DataFrame(rows, columns=COLUMNS)


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _row(rater, task, item, cond, target, choice, correct, is_catch, clock, rng) -> dict:
    ms = rng.randint(1500, 25000)
    return {"rater_id": rater, "task_id": task, "item_id": item, "condition": cond, "target": target,
            "choice": choice, "correct": correct, "is_catch": str(is_catch), "shown_at": _iso(clock),
            "answered_at": _iso(clock + ms), "response_ms": str(ms)}


def responses_frame(rows: list[tuple]) -> pd.DataFrame:
    """A responses table from short tuples (rater, task, item, condition, choice, correct[, is_catch[, ms]])."""
    out = []
    for i, r in enumerate(rows):
        rater, task, item, cond, choice, correct = r[:6]
        is_catch = r[6] if len(r) > 6 else 0
        ms = r[7] if len(r) > 7 else 1000 + i
        out.append({"rater_id": rater, "task_id": task, "item_id": item, "condition": cond, "target": "true",
                    "choice": choice, "correct": correct, "is_catch": str(is_catch),
                    "shown_at": _iso(1_800_000_000_000 + 60_000 * i),
                    "answered_at": _iso(1_800_000_000_000 + 60_000 * i + ms), "response_ms": str(ms)})
    return pd.DataFrame(out, columns=COLUMNS)


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    """Write a responses table as the study app's CSV."""
    df.to_csv(path, index=False)
    return path


def write_study_db(df: pd.DataFrame, path: Path) -> Path:
    """A SQLite file shaped like the study's: typed tables and a `responses_export` view over them."""
    db = sqlite_utils.Database(path)
    typed = df.copy()
    typed["is_catch"] = typed["is_catch"].astype(int)
    typed["response_ms"] = typed["response_ms"].astype(int)
    # Stored in another order than the CSV, with integer columns, as a real database would.
    records = typed.sort_values(["answered_at", "rater_id"]).to_dict("records")
    for i, rec in enumerate(records):
        rec["response_id"] = i + 1
    db["responses"].insert_all(records, pk="response_id")
    db.create_view("responses_export", "SELECT " + ", ".join(COLUMNS) + " FROM responses ORDER BY response_id")
    db.conn.close()
    return path


def simple_planner(n_raters: int, tasks_per_rater: int, n_items: int, ratings_per_task: int = 2,
                   seed: int = 0) -> list[dict]:
    """A stand-in for the study's planner (tests only): least-rated task first, one task per image per rater,
    conditions alternating within a rater."""
    rng = random.Random(seed)
    counts = {(i, c, t): 0 for i in range(n_items) for c in ("dense", "spade") for t in ("true", "predicted")}
    rows = []
    for r in range(n_raters):
        seen: set[int] = set()
        for k in range(tasks_per_rater):
            cond = ("dense", "spade")[(k + r) % 2]
            options = [key for key in counts if key[1] == cond and key[0] not in seen]
            low = min(counts[key] for key in options)
            key = rng.choice([o for o in options if counts[o] == low])
            counts[key] += 1
            seen.add(key[0])
            rows.append({"rater_id": f"sim{r:04d}", "item_id": f"item{key[0]:04d}", "condition": cond,
                         "target": key[2], "task_id": f"item{key[0]:04d}/{cond}/{key[2]}", "is_catch": 0,
                         "correct": rng.choice("AB")})
    return rows


def read_view(path: Path) -> list[tuple]:
    """All rows of a DB's responses_export view (for checks)."""
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM responses_export").fetchall()
