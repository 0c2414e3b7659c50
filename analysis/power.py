"""Power analysis: how many raters does a study need to detect the SPADE - dense difference?

Each simulated study runs the study's own assignment planner (injected as
`assign`, because `analysis` never imports `study`), lets simulated raters answer
(per-condition decision and agreement rates, default the paper's, with random
rater and item effects on the log-odds scale), sends the answers through the
same validation as real responses, and applies the primary test
(`analysis.permutation.primary_test` on net agreement: whole tasks' condition
labels swapped within each (item, target), two-sided). Power is the share of
simulated studies that reject at the two-sided 5% level (`power`); the share
that reject with SPADE ahead is kept beside it (`power_positive`). With
`secondary=True` each study also fits the secondary mixed model
(`analysis.models.mixed_logit`, about a second per study).

The planner is called with keyword arguments:
`assign(n_raters=, tasks_per_rater=, n_items=, ratings_per_task=, seed=)` and returns
one dict per assignment with at least rater_id, item_id, condition, target
(task_id, correct and is_catch are used when present; catch rows are dropped).

Every simulated study is appended to `power_sims.jsonl` in the output folder as
soon as it is done, so an interrupted run resumes where it stopped (and a run
with more --sims extends the earlier one).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit, logit
from tqdm.auto import tqdm

from contracts.files import write_json_atomic, write_text_atomic
from analysis.io import add_outcomes, validate_responses
from contracts.responses import CONDITIONS
from analysis.metrics import condition_rates, wilson
from analysis.models import mixed_logit
from analysis.paper import COUNTS
from analysis.permutation import ALPHA, primary_test

Planner = Callable[..., list[dict]]
SIMS_FILE, CONFIG_FILE = "power_sims.jsonl", "power_config.json"
# Monte Carlo permutations per simulated study: enough for a p-value near 0.05 (its Monte Carlo SD is
# about 0.005), and a few milliseconds per study.
POWER_PERMUTATIONS = 1999
TEST_NAME = "permutation test of whole tasks within (item, target), net agreement, two-sided, alpha 0.05"


def _paper_rate(cond: str, num: str, den: str) -> float:
    return COUNTS[cond][num] / COUNTS[cond][den]


def marginal_intercept(p: float, sd: float) -> float:
    """The log-odds b with E[expit(b + sd * Z)] = p for Z standard normal (Gauss-Hermite quadrature).

    Random effects on the log-odds scale pull the average rate toward 1/2; solving for b keeps
    the simulated study's expected rate at the one asked for.
    """
    if sd == 0:
        return float(logit(p))
    z, w = np.polynomial.hermite_e.hermegauss(40)
    w = w / w.sum()
    return float(brentq(lambda b: float(w @ expit(b + sd * z)) - p, -30, 30))


@dataclass(frozen=True)
class RaterModel:
    """How simulated raters answer: expected rates per condition, and the rater and item spread around them."""

    decision: dict[str, float] = field(default_factory=lambda: {c: _paper_rate(c, "decided", "n") for c in CONDITIONS})
    agreement: dict[str, float] = field(
        default_factory=lambda: {c: _paper_rate(c, "correct", "decided") for c in CONDITIONS})
    rater_sd: float = 0.5  # SD of rater random intercepts (log-odds), for deciding and for agreeing
    item_sd: float = 0.5  # SD of item random intercepts (log-odds)
    task_sd: float = 0.0  # SD of task (item x condition x target) intercepts: ratings of one visualization alike
    item_condition_sd: float = 0.0  # SD of item x condition intercepts: an image's visualization in one condition

    @property
    def total_sd(self) -> float:
        """SD of the sum of the random effects on the log-odds scale."""
        return float(np.sqrt(self.rater_sd ** 2 + self.item_sd ** 2 + self.task_sd ** 2 + self.item_condition_sd ** 2))


def simulate_responses(assignments: list[dict], model: RaterModel, rng: np.random.Generator) -> pd.DataFrame:
    """Simulated raters' answers to these assignments, as a responses table in the study's CSV schema (text)."""
    a = pd.DataFrame(assignments)
    if "is_catch" in a:
        a = a[a["is_catch"].astype(int) == 0]
    if a.empty:
        raise ValueError("the planner gave no (non-catch) assignment")
    a = a.reset_index(drop=True)
    raters, r_idx = np.unique(a["rater_id"].astype(str), return_inverse=True)
    items, i_idx = np.unique(a["item_id"].astype(str), return_inverse=True)
    n = len(a)
    effects = {k: (rng.normal(0, model.rater_sd, len(raters))[r_idx] + rng.normal(0, model.item_sd, len(items))[i_idx])
               for k in ("decision", "agreement")}
    cond = a["condition"].to_numpy()
    task_id = a["task_id"].astype(str) if "task_id" in a else (
        a["item_id"].astype(str) + "/" + a["condition"] + "/" + a["target"])
    # Drawn only when asked for, so that studies without them keep their seeded answers.
    for sd_name, key in (("task_sd", task_id), ("item_condition_sd", a["item_id"].astype(str) + "/" + a["condition"])):
        sd_value = getattr(model, sd_name)
        if sd_value > 0:
            levels, idx = np.unique(key.to_numpy(), return_inverse=True)
            for k in effects:
                effects[k] = effects[k] + rng.normal(0, sd_value, len(levels))[idx]
    sd = model.total_sd
    base = {k: {c: marginal_intercept(getattr(model, k)[c], sd) for c in CONDITIONS} for k in ("decision", "agreement")}
    p_dec = expit(np.array([base["decision"][c] for c in cond]) + effects["decision"])
    p_agr = expit(np.array([base["agreement"][c] for c in cond]) + effects["agreement"])
    decided = rng.random(n) < p_dec
    agrees = rng.random(n) < p_agr
    correct = a["correct"].astype(str).to_numpy() if "correct" in a else rng.choice(["A", "B"], n)
    other = np.where(correct == "A", "B", "A")
    choice = np.where(decided, np.where(agrees, correct, other), "undecided")
    ms = rng.integers(1500, 25000, n)
    return pd.DataFrame({
        "rater_id": a["rater_id"].astype(str), "task_id": task_id, "item_id": a["item_id"].astype(str),
        "condition": a["condition"], "target": a["target"], "choice": choice, "correct": correct, "is_catch": "0",
        "shown_at": "", "answered_at": "", "response_ms": ms.astype(str),
    })


def sim_seed(seed: int, n_raters: int, sim: int) -> int:
    """The seed of one simulated study: independent streams per (seed, rater count, index)."""
    return int(np.random.SeedSequence([seed, n_raters, sim]).generate_state(1)[0])


def simulate_study(assign: Planner, n_raters: int, sim: int, *, tasks_per_rater: int, n_items: int,
                   ratings_per_task: int, model: RaterModel, seed: int, permutations: int = POWER_PERMUTATIONS,
                   secondary: bool = False) -> dict:
    """Plan, answer and test one simulated study; returns its record for power_sims.jsonl."""
    s = sim_seed(seed, n_raters, sim)
    plan = assign(n_raters=n_raters, tasks_per_rater=tasks_per_rater, n_items=n_items,
                  ratings_per_task=ratings_per_task, seed=s)
    raw = simulate_responses(plan, model, np.random.default_rng(s))
    df = add_outcomes(validate_responses(raw, source="simulated responses"))
    test = primary_test(df, "net", n_permutations=permutations, seed=s)
    tested = test["p_value"] is not None
    net = condition_rates(df)["net"].to_dict()
    rec = {"raters": n_raters, "sim": sim, "ratings": int(len(df)), "fitted": tested,
           "estimate": test["estimate"], "p": test["p_value"],
           "detected": bool(tested and test["p_value"] < ALPHA),
           "detected_positive": bool(tested and test["p_value"] < ALPHA and test["estimate"] > 0),
           "net_dense": net["dense"], "net_spade": net["spade"]}
    if secondary:
        fit = mixed_logit(df, "net", seed=s)
        rec.update(mixed_fitted=bool(fit["fitted"]), mixed_z=fit.get("z"),
                   mixed_detected=bool(fit["fitted"] and fit["p"] < ALPHA))
    return rec


def _load_done(path: Path) -> dict[tuple[int, int], dict]:
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                done[rec["raters"], rec["sim"]] = rec
            except (json.JSONDecodeError, KeyError):
                continue  # a line cut short by an interruption: that study is simply redone
    return done


def run_power(assign: Planner, rater_counts: list[int], sims: int, out_dir: str | Path, *, tasks_per_rater: int,
              n_items: int, ratings_per_task: int = 2, model: RaterModel | None = None, seed: int = 0,
              jobs: int = 1, progress: bool = True, secondary: bool = False) -> pd.DataFrame:
    """Simulate `sims` studies per rater count (resuming from out_dir) and return the power table."""
    model = model or RaterModel()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {"tasks_per_rater": tasks_per_rater, "items": n_items, "ratings_per_task": ratings_per_task,
              "seed": seed, "model": asdict(model), "test": TEST_NAME, "permutations": POWER_PERMUTATIONS,
              "secondary": bool(secondary)}
    cfg_path = out / CONFIG_FILE
    if cfg_path.is_file():
        old = json.loads(cfg_path.read_text())
        if old != json.loads(json.dumps(config)):
            raise ValueError(f"{out} holds a power run with other settings ({cfg_path}); use another --out")
    else:
        write_json_atomic(cfg_path, config)
    sims_path = out / SIMS_FILE
    done = _load_done(sims_path)
    # Rewrite the valid records only: an interrupted write may have left half a line at the end.
    write_text_atomic(sims_path, "".join(json.dumps(rec) + "\n" for rec in done.values()))
    todo = [(r, i) for r in rater_counts for i in range(sims) if (r, i) not in done]
    kwargs = dict(tasks_per_rater=tasks_per_rater, n_items=n_items, ratings_per_task=ratings_per_task,
                  model=model, seed=seed, secondary=secondary)
    bar = tqdm(total=len(todo), desc="simulated studies", unit="study", disable=not progress)
    with open(sims_path, "a") as fh:
        def record(rec: dict) -> None:
            """Keep one finished study, in memory and on disk at once."""
            done[rec["raters"], rec["sim"]] = rec
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            bar.update()

        if jobs <= 1:
            for r, i in todo:
                record(simulate_study(assign, r, i, **kwargs))
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(simulate_study, assign, r, i, **kwargs) for r, i in todo]
                for fut in as_completed(futures):
                    record(fut.result())
    bar.close()
    table = power_table([done[r, i] for r in rater_counts for i in range(sims)])
    write_text_atomic(out / "power.csv", table.to_csv(index=False, lineterminator="\n"))
    write_text_atomic(out / "power.md", power_markdown(table) + "\n")
    return table


def power_table(records: list[dict]) -> pd.DataFrame:
    """Per rater count: ratings, simulated studies, power (two-sided) with a Wilson interval, mean net per condition."""
    df = pd.DataFrame(records)
    rows = []
    for r, g in df.groupby("raters", sort=True):
        k, n = int(g["detected"].sum()), int(len(g))
        lo, hi = wilson(k, n)
        row = {"raters": int(r), "ratings": int(round(g["ratings"].mean())), "sims": n, "power": k / n,
               "power_lo": lo, "power_hi": hi, "power_positive": float(g["detected_positive"].mean()),
               "not_fitted": int((~g["fitted"]).sum()),
               "net_dense": float(g["net_dense"].mean()), "net_spade": float(g["net_spade"].mean())}
        if "mixed_detected" in g:
            km = int(g["mixed_detected"].sum())
            row.update(mixed_power=km / n, mixed_power_lo=wilson(km, n)[0], mixed_power_hi=wilson(km, n)[1])
        rows.append(row)
    return pd.DataFrame(rows)


def power_markdown(table: pd.DataFrame) -> str:
    """The power table for reading."""
    shown = pd.DataFrame({
        "raters": table["raters"], "ratings": table["ratings"], "simulated studies": table["sims"],
        "power % [95% CI]": [f"{100 * p:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
                             for p, lo, hi in zip(table["power"], table["power_lo"], table["power_hi"])],
        "mean net dense %": (100 * table["net_dense"]).round(1), "mean net SPADE %": (100 * table["net_spade"]).round(1),
    })
    if "mixed_power" in table:
        shown.insert(4, "secondary mixed model % [95% CI]", [
            f"{100 * p:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
            for p, lo, hi in zip(table["mixed_power"], table["mixed_power_lo"], table["mixed_power_hi"])])
    return shown.to_markdown(index=False)


def _positive_int(text: str) -> int:
    try:
        x = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if x < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return x


def _rate_pair(text: str) -> dict[str, float]:
    try:
        dense, spade = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DENSE,SPADE fractions, got {text!r}") from None
    if not (0 < dense < 1 and 0 < spade < 1):
        raise argparse.ArgumentTypeError(f"rates must lie strictly between 0 and 1, got {text}")
    return {"dense": dense, "spade": spade}


def _counts(text: str) -> list[int]:
    try:
        values = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or values[0] < 2:
        raise argparse.ArgumentTypeError("rater counts must be integers >= 2")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The parser of `spade-study analyze power`."""
    from analysis.cli import OneLineParser

    default = RaterModel()
    p = OneLineParser(prog="spade-study analyze power",
                      description="Estimate the power of the primary test for a range of rater counts by simulation.")
    p.add_argument("--raters", type=_positive_int, required=True, help="planned number of raters")
    p.add_argument("--tasks-per-rater", type=_positive_int, required=True, help="tasks per rater (paper: 31)")
    p.add_argument("--items", type=_positive_int, default=100, help="images in the bundle (default 100)")
    p.add_argument("--ratings-per-task", type=_positive_int, default=2, help="target ratings per task (default 2)")
    p.add_argument("--sims", type=_positive_int, default=500, help="simulated studies per rater count (default 500)")
    p.add_argument("--rater-counts", type=_counts, default=None,
                   help="comma-separated rater counts (default: 1/2, 1, 3/2 and 2 times --raters)")
    p.add_argument("--decision", type=_rate_pair, default=default.decision, metavar="DENSE,SPADE",
                   help="decision rates (default the paper's 0.771,0.874)")
    p.add_argument("--agreement", type=_rate_pair, default=default.agreement, metavar="DENSE,SPADE",
                   help="agreement rates among decided (default the paper's 0.736,0.799)")
    p.add_argument("--rater-sd", type=float, default=default.rater_sd, help="rater SD on the log-odds scale (0.5)")
    p.add_argument("--item-sd", type=float, default=default.item_sd, help="item SD on the log-odds scale (0.5)")
    p.add_argument("--task-sd", type=float, default=default.task_sd,
                   help="task (one visualization) SD on the log-odds scale (0)")
    p.add_argument("--item-condition-sd", type=float, default=default.item_condition_sd,
                   help="item x condition SD on the log-odds scale (0)")
    p.add_argument("--secondary", action="store_true",
                   help="also fit the secondary mixed model in each study (about 1 s per study)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--jobs", type=_positive_int, default=1, help="worker processes (default 1)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the resumable results (default power-r<R>-t<T>-i<I>-k<K>-seed<S>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str], assign: Planner | None) -> int:
    """Entry point of `spade-study analyze power`; `assign` is the study's planner (see the module docstring)."""
    from analysis.cli import UsageError

    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if assign is None:
        print("error: analyze power needs the study's assignment planner; run it through `spade-study analyze "
              "power` (which passes study.assignment.simulate_assignments) or call analysis.power.main(argv, assign)",
              file=sys.stderr)
        return 2
    if min(args.rater_sd, args.item_sd, args.task_sd, args.item_condition_sd) < 0:
        print("error: --rater-sd, --item-sd, --task-sd and --item-condition-sd must be >= 0", file=sys.stderr)
        return 2
    counts = args.rater_counts or sorted({max(2, round(args.raters * f)) for f in (0.5, 1, 1.5, 2)})
    out = args.out or Path(f"power-r{args.raters}-t{args.tasks_per_rater}-i{args.items}-k{args.ratings_per_task}"
                           f"-seed{args.seed}")
    model = RaterModel(decision=args.decision, agreement=args.agreement, rater_sd=args.rater_sd,
                       item_sd=args.item_sd, task_sd=args.task_sd, item_condition_sd=args.item_condition_sd)
    try:
        table = run_power(assign, counts, args.sims, out, tasks_per_rater=args.tasks_per_rater, n_items=args.items,
                          ratings_per_task=args.ratings_per_task, model=model, seed=args.seed,
                          jobs=min(args.jobs, os.cpu_count() or 1), progress=not args.quiet, secondary=args.secondary)
    except ValueError as exc:  # the planner's refusals (e.g. more tasks than images) and a foreign --out
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"Power of the primary test (permutation test of whole tasks on net agreement, two-sided, 5% level); "
          f"{args.tasks_per_rater} tasks per rater, {args.items} items, {args.ratings_per_task} ratings per task:")
    print(power_markdown(table))
    print(f"wrote {out}/power.csv, power.md and {SIMS_FILE} (rerun the same command to resume or extend)")
    return 0
