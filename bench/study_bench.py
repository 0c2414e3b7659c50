"""Benchmark of the study app's server side: many raters answering at once against one SQLite file.

Each simulated rater is a thread that goes through `study.service` (the code path of
the Streamlit app, which also serves every browser session from a thread of one
process): consent, instructions, practice, then `next_task` / `submit` until done,
with a short random pause between answers. Afterwards the database is audited:
no response lost or duplicated, no image twice per rater, conditions and A/B sides
balanced within every rater, and coverage k reached by every task before any task
got k + 1. Reports p50/p95/p99 latencies of `next_task` and `submit`.

These are the Python service layer's latencies only (the SQLite work of one click), not what a
rater waits for: `bench/study_load.py` measures click-to-next-task-rendered through the real
server (Streamlit's script run, websocket, pictures).

    .venv/bin/python bench/study_bench.py                      # 50 raters, paper design
    .venv/bin/python bench/study_bench.py --think 0 0          # no pause: worst-case contention

A run takes about a minute and starts from a fresh database in a temporary folder
(nothing to resume: the measurement is the run).
"""
from __future__ import annotations

import argparse
from contextlib import contextmanager
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from study.config import StudyConfig, load_config  # noqa: E402
from study.db import connect, immediate  # noqa: E402
from study.service import Refused, StudyService  # noqa: E402
from study.examples import make_bundle, write_config  # noqa: E402


class PerCallConnectionService(StudyService):
    """The design the app does not use, for comparison: a new connection per call, closed after it
    (closing the last connection of a WAL file checkpoints it), and writers waiting in SQLite's busy
    handler instead of on an in-process lock."""

    @contextmanager
    def _db(self):
        db = connect(self.db_path)
        try:
            yield db
        finally:
            db.conn.close()

    @contextmanager
    def _write(self):
        with self._db() as db, immediate(db):
            yield db


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def run_rater(svc: StudyService, think: tuple[float, float], seed: int, out: dict, bar: tqdm, lock: threading.Lock) -> None:
    """One simulated rater from consent to completion; records latencies and what it submitted."""
    rng = random.Random(seed)
    rater = svc.consent({})
    svc.finish_instructions(rater.rater_id)
    while svc.rater(rater.rater_id).stage == "practice":
        state = svc.practice_state(rater.rater_id)
        svc.submit_practice(rater.rater_id, state.round, state.trial, svc.practice_trial(state).correct)
    next_ms, submit_ms, submitted = [], [], []
    while True:
        t0 = time.perf_counter()
        a = svc.next_task(rater.rater_id)
        next_ms.append((time.perf_counter() - t0) * 1000)
        if a is None:
            break
        time.sleep(rng.uniform(*think))
        choice = rng.choice(["A", "B", "undecided"])
        t0 = time.perf_counter()
        svc.submit(rater.rater_id, a.assignment_id, choice, a.nonce)
        submit_ms.append((time.perf_counter() - t0) * 1000)
        submitted.append((a.assignment_id, choice))
        if rng.random() < 0.05:  # a double click now and then: must be refused, not recorded twice
            try:
                svc.submit(rater.rater_id, a.assignment_id, choice, a.nonce)
                raise AssertionError("a replayed submit was accepted")
            except Refused:
                pass
        with lock:
            bar.update(1)
    with lock:
        out["next_ms"] += next_ms
        out["submit_ms"] += submit_ms
        out["submitted"][rater.rater_id] = submitted


def audit(db_path: Path, submitted: dict[str, list[tuple[int, str]]], cfg: StudyConfig) -> dict:
    """Check the stored responses against what the raters submitted, and the policy's invariants."""
    db = connect(db_path)
    rows = list(db.query("SELECT a.assignment_id, e.* FROM responses_export e JOIN assignments a ON a.rater_id = e.rater_id AND a.task_id = e.task_id"))
    stored = {(r["rater_id"], r["assignment_id"], r["choice"]) for r in rows}
    sent = {(rid, aid, ch) for rid, pairs in submitted.items() for aid, ch in pairs}
    per_assignment = Counter(r["assignment_id"] for r in rows)
    problems = []
    by_rater = defaultdict(list)
    for r in rows:
        by_rater[r["rater_id"]].append(r)
    for rid, rr in by_rater.items():
        if len({r["item_id"] for r in rr}) != len(rr):
            problems.append(f"{rid}: an image twice")
        cond = Counter(r["condition"] for r in rr if not r["is_catch"])
        if abs(cond["dense"] - cond["spade"]) > 1:
            problems.append(f"{rid}: conditions {dict(cond)}")
        sides = Counter(r["correct"] for r in rr)
        if abs(sides["A"] - sides["B"]) > 1:
            problems.append(f"{rid}: sides {dict(sides)}")
        if sum(r["is_catch"] for r in rr) != cfg.catch_per_rater or len(rr) != cfg.tasks_total:
            problems.append(f"{rid}: {len(rr)} answers")
    # Coverage, replayed in commit order (assignment ids are given out under BEGIN IMMEDIATE). A task may
    # get rating k+1 only when no task below k was takeable by that rater (an image they had not seen,
    # in a condition their balance allowed); with many raters at once that can happen before every
    # task has k (the rest are on images the raters at hand have seen), so those events are counted.
    k, tpr = cfg.ratings_per_task, cfg.tasks_per_rater
    tasks = {t: (item, cond) for t, item, cond in db.execute("SELECT task_id, item_id, condition FROM tasks WHERE is_catch = 0").fetchall()}
    counts = {t: 0 for t in tasks}
    seen: dict[str, set] = defaultdict(set)
    conds: dict[str, Counter] = defaultdict(Counter)
    beyond_k_early = 0
    for rid, task_id, item_id in db.execute("SELECT rater_id, task_id, item_id FROM assignments ORDER BY assignment_id").fetchall():
        if task_id in tasks:
            if counts[task_id] >= k and min(counts.values()) < k:
                beyond_k_early += 1
                c = conds[rid]
                bound = min(2, tpr - sum(c.values()) - 1 + tpr % 2)

                def allowed(cond: str) -> bool:
                    """Whether the rater's balance allowed one more task of this condition."""
                    after = c.copy()
                    after[cond] += 1
                    return abs(after["dense"] - after["spade"]) <= bound

                takeable = [t for t, n in counts.items() if n < k and tasks[t][0] not in seen[rid] and allowed(tasks[t][1])]
                if takeable:
                    problems.append(f"{task_id} went beyond k while {len(takeable)} tasks below k were takeable by {rid}")
            counts[task_id] += 1
            conds[rid][tasks[task_id][1]] += 1
        seen[rid].add(item_id)
    return {
        "responses": len(rows),
        "submitted": len(sent),
        "lost": len(sent - stored),
        "unexpected": len(stored - sent),
        "duplicated": sum(n - 1 for n in per_assignment.values() if n > 1),
        "beyond_k_before_all_k": beyond_k_early,
        "min_ratings_per_task": min(counts.values()),
        "max_ratings_per_task": max(counts.values()),
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its results (and a Markdown row for bench/README.md)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--raters", type=int, default=50)
    p.add_argument("--items", type=int, default=100)
    p.add_argument("--tasks", type=int, default=31, help="main tasks per rater")
    p.add_argument("--catch", type=int, default=3)
    p.add_argument("--k", type=int, default=2)
    p.add_argument("--think", type=float, nargs=2, default=(0.05, 0.3), metavar=("MIN_S", "MAX_S"),
                   help="pause between two answers of a rater, uniform in [MIN_S, MAX_S] seconds")
    p.add_argument("--compare", action="store_true",
                   help="then run the same load with a connection per call and no in-process write lock, and report the p95 ratios")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "study_bench.json")
    args = p.parse_args(argv)
    report = run(args, StudyService)
    if args.compare:
        naive = run(args, PerCallConnectionService)
        report["compare_per_call_connections"] = {
            "latency_ms": naive["latency_ms"],
            "lost": naive["lost"],
            "duplicated": naive["duplicated"],
            "p95_ratio_next": round(naive["latency_ms"]["next"][95] / report["latency_ms"]["next"][95], 1),
            "p95_ratio_submit": round(naive["latency_ms"]["submit"][95] / report["latency_ms"]["submit"][95], 1),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    lat, result = report["latency_ms"], report
    ok = (result["lost"] == 0 and result["duplicated"] == 0 and result["unexpected"] == 0 and not result["problems"]
          and lat["next"][95] <= 50 and lat["submit"][95] <= 50)
    print(
        f"| {args.raters} | {args.think[0]:g}-{args.think[1]:g} s | {result['responses']} | {result['lost']} | {result['duplicated']} "
        f"| {'yes' if not result['problems'] else 'NO'} | {lat['next'][50]} / {lat['next'][95]} / {lat['next'][99]} "
        f"| {lat['submit'][50]} / {lat['submit'][95]} / {lat['submit'][99]} | {report['answers_per_s']} | {'PASS' if ok else 'FAIL'} |"
    )
    return 0 if ok else 1


def run(args: argparse.Namespace, service_class: type) -> dict:
    """One benchmark run with a fresh bundle and database; return latencies and the audit."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"building a {args.items}-item bundle from the ImageNet sample ...", file=sys.stderr)
        bundle = make_bundle(tmp / "bundle", n_items=args.items)
        cfg_path = write_config(tmp / "study.toml", identity="open", tasks_per_rater=args.tasks,
                                catch_per_rater=args.catch, ratings_per_task=args.k, practice_min_correct=1,
                                min_view_seconds=0)  # simulated raters answer at machine speed
        cfg = load_config(cfg_path)
        svc = service_class(tmp / "study.db", bundle, cfg)
        out: dict = {"next_ms": [], "submit_ms": [], "submitted": {}}
        lock = threading.Lock()
        bar = tqdm(total=args.raters * cfg.tasks_total, desc=service_class.__name__, unit="answer")
        threads = [threading.Thread(target=run_rater, args=(svc, tuple(args.think), i, out, bar, lock)) for i in range(args.raters)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        bar.close()
        result = audit(tmp / "study.db", out["submitted"], cfg)
    lat = {
        name: {q: round(percentile(out[f"{name}_ms"], q), 1) for q in (50, 95, 99)} | {"n": len(out[f"{name}_ms"])}
        for name in ("next", "submit")
    }
    return {"args": {k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "service": service_class.__name__, "wall_s": round(wall, 1), "latency_ms": lat, **result,
            "answers_per_s": round(result["responses"] / wall, 1)}

if __name__ == "__main__":
    sys.exit(main())
