"""Calibration of the primary test (and of the secondary mixed model): false positives under the null, power.

    .venv/bin/python bench/calibration.py [--sims 500] [--secondary-sims 0] [--permutations 1999]
                                          [--seed 0] [--jobs 1] [--out bench/out/calibration]

Three designs, each simulated `--sims` times under the null (both conditions at the
paper's pooled rates: decision 82.4%, agreement 77.1%) and `--sims` times at the
paper's effect (decision 77.1% / 87.4%, agreement 73.6% / 79.9%, dense / SPADE),
all with 24 raters x 31 tasks:

- planner_k2: the study's planner (`study.assignment.simulate_assignments`, 100
  images, 2 ratings per task, catch trials left out), rater and item SD 0.5;
- paper_like: the design of the paper fixture (`analysis.examples.paper_responses`:
  213 tasks, about 3.5 ratings per task), rater and item SD 0.5, task SD 1.0,
  item x condition SD 0.5;
- strong_raters: the planner's design, rater SD 1.0, item SD 0.5.

Answers come from `analysis.power.simulate_responses` (log-odds random effects,
expected rates kept as asked). The primary test is `analysis.permutation.primary_test`
(net agreement, two-sided, alpha 0.05); with --secondary-sims N the first N studies
of each design and effect are also tested with the secondary mixed model
(`analysis.models.mixed_logit`, with the task terms; about 10 s per fit on this
machine). Every study is appended to calibration_sims.jsonl in --out as soon as it
is done, so a rerun resumes; the table goes to calibration.md. A false-positive rate
is calibrated when it lies inside the binomial 95% interval around 5% for that
number of studies (the central interval of Binomial(n, 0.05) / n).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binom
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.examples import paper_responses  # noqa: E402
from analysis.io import add_outcomes, validate_responses  # noqa: E402
from analysis.metrics import wilson  # noqa: E402
from analysis.models import mixed_logit  # noqa: E402
from analysis.paper import COUNTS  # noqa: E402
from analysis.permutation import ALPHA, primary_test  # noqa: E402
from analysis.power import RaterModel, sim_seed, simulate_responses  # noqa: E402
from study.assignment import simulate_assignments  # noqa: E402

RATERS, TASKS_PER_RATER, ITEMS, RATINGS_PER_TASK = 24, 31, 100, 2
POOLED_DECISION = (COUNTS["dense"]["decided"] + COUNTS["spade"]["decided"]) / (COUNTS["dense"]["n"] + COUNTS["spade"]["n"])
POOLED_AGREEMENT = (COUNTS["dense"]["correct"] + COUNTS["spade"]["correct"]) / (
    COUNTS["dense"]["decided"] + COUNTS["spade"]["decided"])
# design -> (assignments: "planner" or "paper", random-effect SDs)
DESIGNS: dict[str, tuple[str, dict[str, float]]] = {
    "planner_k2": ("planner", {"rater_sd": 0.5, "item_sd": 0.5}),
    "paper_like": ("paper", {"rater_sd": 0.5, "item_sd": 0.5, "task_sd": 1.0, "item_condition_sd": 0.5}),
    "strong_raters": ("planner", {"rater_sd": 1.0, "item_sd": 0.5}),
}
EFFECTS = ("null", "paper")
SIMS_FILE = "calibration_sims.jsonl"


def rater_model(design: str, effect: str) -> RaterModel:
    """The simulated raters of one design, with no effect or the paper's."""
    sds = DESIGNS[design][1]
    if effect == "paper":
        return RaterModel(**sds)  # RaterModel's defaults are the paper's rates
    return RaterModel(decision={"dense": POOLED_DECISION, "spade": POOLED_DECISION},
                      agreement={"dense": POOLED_AGREEMENT, "spade": POOLED_AGREEMENT}, **sds)


def paper_design() -> pd.DataFrame:
    """The paper fixture's assignments (who rated which task), without its answers and catch trials."""
    fixture = paper_responses()
    return fixture.loc[fixture["is_catch"] == "0", ["rater_id", "task_id", "item_id", "condition", "target",
                                                    "correct"]].reset_index(drop=True)


def run_sim(sim: int, seed: int, permutations: int, secondary: bool, todo: set[tuple[str, str, str]]) -> list[dict]:
    """One simulation index: every (design, effect, test) in `todo`, sharing the planner's assignments."""
    plans = {"planner": pd.DataFrame(simulate_assignments(
        n_raters=RATERS, tasks_per_rater=TASKS_PER_RATER, n_items=ITEMS, ratings_per_task=RATINGS_PER_TASK,
        seed=sim_seed(seed, RATERS, sim))), "paper": paper_design()}
    records = []
    for d_idx, design in enumerate(DESIGNS):
        for e_idx, effect in enumerate(EFFECTS):
            tests = [t for t in ("primary", "secondary") if (design, effect, t) in todo]
            if not tests:
                continue
            rng = np.random.default_rng(np.random.SeedSequence([seed, d_idx, e_idx, sim]))
            raw = simulate_responses(plans[DESIGNS[design][0]], rater_model(design, effect), rng)
            df = add_outcomes(validate_responses(raw, source="simulated responses"))
            for test in tests:
                t0 = time.perf_counter()
                if test == "primary":
                    r = primary_test(df, "net", n_permutations=permutations, seed=sim)
                    rec = {"estimate": r["estimate"], "p": r["p_value"], "ci": [r["ci_low"], r["ci_high"]]}
                else:
                    r = mixed_logit(df, "net", seed=sim)
                    rec = {"estimate": r.get("log_odds"), "p": r.get("p"), "converged": r.get("converged")}
                rec.update(design=design, effect=effect, test=test, sim=sim, ratings=int(len(df)),
                           tasks=int(df["task_id"].nunique()), seconds=time.perf_counter() - t0,
                           rejected=bool(rec["p"] is not None and rec["p"] < ALPHA))
                records.append(rec)
    return records


def acceptance_band(n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """The central 95% interval of the rejection rate of n independent studies of a test exact at alpha."""
    return float(binom.ppf(0.025, n, alpha) / n), float(binom.ppf(0.975, n, alpha) / n)


def table(records: list[dict]) -> pd.DataFrame:
    """Per design and test: false-positive rate with its Wilson interval and the acceptance band, and power."""
    df = pd.DataFrame(records)
    rows = []
    for (design, test), g in df.groupby(["design", "test"], sort=False):
        row = {"design": design, "test": test}
        for effect, name in (("null", "false_positive"), ("paper", "power")):
            e = g[g["effect"] == effect]
            k, n = int(e["rejected"].sum()), int(len(e))
            row[f"{name}_n"] = n
            row[name] = k / n if n else None
            row[f"{name}_ci"] = wilson(k, n) if n else None
        n0 = row["false_positive_n"]
        row["band"] = acceptance_band(n0) if n0 else None
        row["calibrated"] = bool(n0 and row["band"][0] <= row["false_positive"] <= row["band"][1])
        row["median_seconds"] = float(g["seconds"].median())
        rows.append(row)
    order = {d: i for i, d in enumerate(DESIGNS)}
    return pd.DataFrame(rows).sort_values(["test", "design"], key=lambda c: c.map(order) if c.name == "design"
                                          else c).reset_index(drop=True)


def markdown(t: pd.DataFrame) -> str:
    """The calibration table for bench/README.md."""
    def pct(p, ci):
        return f"{100 * p:.1f} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if p is not None else ""

    lines = ["| design | test | null studies | false positives % [95% CI] | binomial 95% band around 5% | "
             "calibrated | studies at the paper's effect | power % [95% CI] | median time per test |",
             "|---|---|---:|:---|:---|:---|---:|:---|---:|"]
    for r in t.itertuples():
        band = f"[{100 * r.band[0]:.1f}, {100 * r.band[1]:.1f}]" if r.band else ""
        lines.append(f"| {r.design} | {r.test} | {r.false_positive_n} | {pct(r.false_positive, r.false_positive_ci)} | "
                     f"{band} | {'yes' if r.calibrated else 'NO'} | {r.power_n} | {pct(r.power, r.power_ci)} | "
                     f"{r.median_seconds * 1000:.0f} ms |")
    return "\n".join(lines)


def _load(path: Path) -> dict[tuple, dict]:
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                done[rec["design"], rec["effect"], rec["test"], rec["sim"]] = rec
            except (json.JSONDecodeError, KeyError):
                continue  # a line cut short by an interruption: that study is redone
    return done


def main(argv: list[str] | None = None) -> int:
    """Run (or resume) the calibration and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sims", type=int, default=500, help="studies per design and effect for the primary test")
    p.add_argument("--secondary-sims", type=int, default=0, help="studies per design that also fit the mixed model")
    p.add_argument("--secondary-power", action="store_true",
                   help="fit the mixed model at the paper's effect too (default: under the null only)")
    p.add_argument("--permutations", type=int, default=1999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("bench/out/calibration"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = {"seed": args.seed, "permutations": args.permutations, "designs": DESIGNS}
    cfg_path = args.out / "calibration_config.json"
    if cfg_path.is_file() and json.loads(cfg_path.read_text()) != json.loads(json.dumps(cfg)):
        print(f"error: {args.out} holds a calibration run with other settings; use another --out", file=sys.stderr)
        return 2
    cfg_path.write_text(json.dumps(cfg, indent=1) + "\n")
    sims_path = args.out / SIMS_FILE
    done = _load(sims_path)
    sims_path.write_text("".join(json.dumps(r) + "\n" for r in done.values()))
    work = {}
    for sim in range(max(args.sims, args.secondary_sims)):
        todo = {(d, e, t) for d in DESIGNS for e in EFFECTS for t, n in (("primary", args.sims),
                                                                          ("secondary", args.secondary_sims))
                if sim < n and (d, e, t, sim) not in done
                and (t == "primary" or e == "null" or args.secondary_power)}
        if todo:
            work[sim] = todo
    start = time.perf_counter()
    load_before = open("/proc/loadavg").read().split()[:3]
    with open(sims_path, "a") as fh, tqdm(total=len(work), desc="simulation indices", unit="sim") as bar:
        def keep(records: list[dict]) -> None:
            """Store one simulation index's records on disk and in memory."""
            for rec in records:
                done[rec["design"], rec["effect"], rec["test"], rec["sim"]] = rec
                fh.write(json.dumps(rec) + "\n")
            fh.flush()
            bar.update()

        if args.jobs <= 1:
            for sim, todo in work.items():
                keep(run_sim(sim, args.seed, args.permutations, bool(args.secondary_sims), todo))
        else:
            with ProcessPoolExecutor(max_workers=args.jobs) as pool:
                futures = [pool.submit(run_sim, sim, args.seed, args.permutations, bool(args.secondary_sims), todo)
                           for sim, todo in work.items()]
                for fut in as_completed(futures):
                    keep(fut.result())
    elapsed = time.perf_counter() - start
    load_after = open("/proc/loadavg").read().split()[:3]
    records = [r for r in done.values() if r["sim"] < (args.sims if r["test"] == "primary" else args.secondary_sims)]
    t = table(records)
    md = markdown(t)
    header = (f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {platform.platform()}, {os.cpu_count()} CPUs; "
              f"load average {' '.join(load_before)} before, {' '.join(load_after)} after; {elapsed:.0f} s for "
              f"{len(work)} simulation indices this run; command: .venv/bin/python bench/calibration.py "
              f"{' '.join(argv if argv is not None else sys.argv[1:])}")
    (args.out / "calibration.md").write_text(header + "\n\n" + md + "\n")
    t.to_json(args.out / "calibration.json", orient="records", indent=1)
    print(header)
    print()
    print(md)
    return 0 if t.loc[t["test"] == "primary", "calibrated"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
