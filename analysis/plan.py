"""The pre-registration: the analysis plan written from the study config before any data, and its check.

`spade-study analyze plan --config STUDY.toml --raters N --out plan.md` writes a Markdown
statement: one primary outcome (net agreement) and its test (the design-based permutation
test of `analysis.permutation`), alpha, sidedness, the replication criterion
(`analysis.verdict`), the exclusion rules the study config declares (its `[exclusion]`
section; without one, the catch-trial rule), the sample size with its simulated power, and
the stopping rule. Everything else is named secondary. The plan ends with a JSON block
that `spade-study analyze --plan plan.md` reads back: the report quotes the plan and lists
every deviation of the analysis from it.

`analysis` never imports `study`, so the TOML is read here with `tomllib` (only the keys the
plan needs; the study app validates the whole file).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pandas as pd

from analysis.permutation import DEFAULT_PERMUTATIONS
from analysis.permutation import METHOD as PRIMARY_METHOD
from analysis.verdict import CRITERION
from contracts.exclusion import ExclusionRules

PLAN_VERSION = 1
ALPHA = 0.05
DESIGN_DEFAULTS = {"tasks_per_rater": 31, "ratings_per_task": 2, "catch_per_rater": 3, "seed": 0, "max_raters": 0}
# Wording of each declared exclusion rule (the rules themselves: contracts.exclusion.ExclusionRules).
EXCLUSION_WORDING: dict[str, str] = {
    "min_catch_accuracy": "catch accuracy below {v} (catch trials right / catch trials; \"can't decide\" is wrong)",
    "min_instruction_seconds": "less than {v} s between consent and the end of the instructions",
    "min_total_seconds": "less than {v} s from consent to completion",
    "max_total_seconds": "more than {v} s from consent to completion",
    "max_speeder_fraction": "more than a share {v} of answers flagged as speeders",
    "min_answers_per_side": "fewer than {v} answers A or fewer than {v} answers B",
    "require_practice_passed": "practice not passed",
}
JSON_FENCE = re.compile(r"```json spade-study-plan\n(.*?)\n```", re.S)


class PlanError(ValueError):
    """A config or plan that cannot be used; the message is one line."""


def read_study_config(path: str | Path) -> tuple[dict, str]:
    """The study TOML as a dict, and its sha256."""
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"{path}: no such config file")
    raw = path.read_bytes()
    try:
        return tomllib.loads(raw.decode("utf-8")), hashlib.sha256(raw).hexdigest()
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: not valid TOML ({' '.join(str(exc).split())})") from None


def design_of(config: dict) -> dict:
    """The design keys of a study config (`[study]`), defaults filled in; a bad value is a PlanError."""
    study = config.get("study", {})
    design = {}
    for key, default in DESIGN_DEFAULTS.items():
        value = study.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise PlanError(f"[study] {key} must be a non-negative integer, not {value!r}")
        design[key] = value
    return design


def exclusion_of(config: dict) -> tuple[dict, bool]:
    """The declared exclusion rules that exclude someone, and whether the config declares an [exclusion] section.

    Without a section, the catch-trial rule of the analysis (`--exclude-raters-failing-catch`,
    every catch trial right) is the plan's, when the study has catch trials.
    """
    section = config.get("exclusion")
    if section is None:
        catch = design_of(config)["catch_per_rater"]
        return ({"min_catch_accuracy": 1.0} if catch else {}), False
    try:
        rules = ExclusionRules.from_dict(section)
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    off = ExclusionRules().to_dict()
    return {k: v for k, v in rules.to_dict().items() if v != off[k]}, True


def make_plan(config: dict, config_sha256: str, *, raters: int, items: int, power: dict | None,
              n_permutations: int, seed: int) -> dict:
    """The plan as data (what `render_plan` writes and `parse_plan` reads back)."""
    design = design_of(config)
    rules, declared = exclusion_of(config)
    return {
        "plan_version": PLAN_VERSION,
        "written_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config_sha256": config_sha256,
        "design": design, "raters": raters, "items": items,
        "primary": {"outcome": "net", "test": "permutation", "method": PRIMARY_METHOD, "alpha": ALPHA,
                    "sided": "two-sided", "n_permutations": n_permutations, "seed": seed},
        "exclusion": rules, "exclusion_declared": declared,
        "power": power,
        "secondary": ["decision rate", "agreement among decided", "mixed logistic model and GEE", "cluster bootstraps",
                      "inter-rater agreement", "per-rater, per-image and per-target breakdowns", "A/B position bias"],
    }


def render_plan(plan: dict) -> str:
    """The pre-registration statement (Markdown), ending with the machine-readable JSON block."""
    d = plan["design"]
    p = plan["primary"]
    lines = ["# Pre-registration: SPADE human-study replication", "",
             f"Written {plan['written_at']}, before data collection, from the study config "
             f"(sha256 `{plan['config_sha256']}`).", "",
             "## Design", "",
             f"Each rater answers {d['tasks_per_rater']} tasks (one visualization, dense or SPADE, of one image's true or "
             f"predicted class, and two regions A and B) plus {d['catch_per_rater']} catch trials; each task is rated "
             f"by {d['ratings_per_task']} raters before any gets more; {plan['items']} images; assignment seed "
             f"{d['seed']}.", "",
             "## Primary outcome and test", "",
             "- Outcome: **net agreement**, the share of ratings choosing the region Score-CAM attributes to the "
             "visualized class (\"can't decide\" counts as not agreeing), SPADE - dense.",
             f"- Test: {p.get('method', 'design-based permutation test')}; {p['n_permutations']} permutations, seed "
             f"{p['seed']} (`analysis.permutation.primary_test`).",
             f"- alpha = {p['alpha']}, {p['sided']}.",
             f"- Replication criterion: {CRITERION}.",
             "- Only this test is confirmatory. Every other number is **secondary** (descriptive or exploratory, no "
             "multiplicity correction, no confirmatory claim): " + ", ".join(plan["secondary"]) + ".", "",
             "## Exclusions", ""]
    if plan["exclusion"]:
        source = "declared in the study config's [exclusion] section" if plan["exclusion_declared"] else (
            "the config declares no [exclusion] section, so the catch-trial rule of the analysis applies")
        lines.append(f"A rater is excluded, with all their ratings, for any of ({source}):")
        lines += [f"- {EXCLUSION_WORDING[k].format(v=v)}" for k, v in plan["exclusion"].items()]
    else:
        lines.append("No rater is excluded (the config declares no rule that excludes anyone).")
    lines += ["", "Catch trials are left out of every outcome. Ratings are never excluded one by one.", "",
              "## Sample size and stopping rule", ""]
    pw = plan.get("power")
    power_text = (f"the primary test detects the paper's effect with power {100 * pw['power']:.1f}% "
                  f"[{100 * pw['power_lo']:.1f}, {100 * pw['power_hi']:.1f}] ({pw['sims']} simulated studies through "
                  f"the study's planner, {pw['source']})") if pw else "power not computed"
    lines += [f"{plan['raters']} raters who complete all tasks: {power_text}.",
              f"Stopping rule: data collection stops when {plan['raters']} raters have completed the study; raters "
              "who leave early or are excluded are replaced until then; there is no interim analysis and the "
              "results are not looked at before the stop.", "",
              "## Machine-readable plan", "", "```json spade-study-plan", json.dumps(plan, indent=2), "```", ""]
    return "\n".join(lines)


def parse_plan(text: str, source: str = "plan") -> dict:
    """Read back the JSON block of a plan written by `render_plan`."""
    found = JSON_FENCE.search(text)
    if not found:
        raise PlanError(f"{source}: no spade-study-plan JSON block (write it with `spade-study analyze plan`)")
    try:
        plan = json.loads(found.group(1))
    except json.JSONDecodeError as exc:
        raise PlanError(f"{source}: its JSON block is not valid JSON ({exc})") from None
    if not isinstance(plan, dict) or plan.get("plan_version") != PLAN_VERSION:
        raise PlanError(f"{source}: not a version-{PLAN_VERSION} spade-study plan")
    return plan


def deviations(plan: dict, summary: dict) -> list[str]:
    """How the analysis in `summary` departs from `plan` (empty when it follows it)."""
    out = []
    inp = summary["input"]
    primary = summary["primary"]["net"]
    p = plan["primary"]
    if primary.get("alpha") != p["alpha"]:
        out.append(f"alpha {primary.get('alpha')} instead of the planned {p['alpha']}")
    if p.get("method") and primary.get("method") != p["method"]:
        out.append(f"primary test run as \"{primary.get('method')}\" instead of the planned \"{p['method']}\"")
    if primary.get("n_permutations") != p["n_permutations"]:
        out.append(f"{primary.get('n_permutations')} permutations instead of the planned {p['n_permutations']}")
    if inp["seed"] != p["seed"]:
        out.append(f"seed {inp['seed']} instead of the planned {p['seed']}")
    completed = inp["raters"]
    if completed != plan["raters"]:
        out.append(f"{completed} raters in the data instead of the planned {plan['raters']} (stopping rule)")
    applied = inp.get("plan_exclusions")
    if plan["exclusion"] and applied is None:
        out.append("the plan's exclusion rules were not applied (run `spade-study analyze --plan` on the data)")
    for rule in (applied or {}).get("not_evaluable", []):
        out.append(f"declared exclusion rule {rule} could not be evaluated: it needs the raters table of the study "
                   "database (give --db instead of --responses)")
    catch = plan["exclusion"].get("min_catch_accuracy")
    if inp["exclude_raters_failing_catch"] and (catch is None or abs(inp["min_catch_accuracy"] - catch) > 1e-9):
        out.append(f"raters with catch accuracy below {inp['min_catch_accuracy']} were excluded, which the plan "
                   f"does not declare (plan: {'no catch rule' if catch is None else catch})")
    return out


def read_raters_table(db: Path) -> pd.DataFrame | None:
    """The study database's raters table (`contracts.exclusion.read_raters`), opened read-only."""
    import sqlite3

    from contracts.exclusion import read_raters

    conn = sqlite3.connect(f"{Path(db).resolve().as_uri()}?mode=ro", uri=True)
    try:
        return read_raters(conn)
    finally:
        conn.close()


def plan_exclusions(plan: dict, responses: pd.DataFrame, raters: pd.DataFrame | None) -> dict:
    """Evaluate the plan's declared exclusion rules (`contracts.exclusion`, as the study app does).

    Returns {"excluded": {rule: [rater ids]}, "not_evaluable": [rules needing the raters table]}.
    """
    from contracts.exclusion import RULES, evaluate, rater_measures

    rules = ExclusionRules.from_dict(plan["exclusion"])
    table = evaluate(rater_measures(responses, raters), rules)
    # Without the raters table (a CSV), these measures are unknown and exclude nobody.
    missing = {"instruction_time", "practice"} if raters is None else set()
    active = rules.active()
    return {"excluded": {rule: sorted(table.index[table[f"fails_{rule}"]].tolist()) for rule in active
                         if rule in RULES and rule not in missing},
            "not_evaluable": [rule for rule in active if rule in missing]}


def build_parser() -> argparse.ArgumentParser:
    """The parser of `spade-study analyze plan`."""
    from analysis.cli import OneLineParser, nonnegative_int

    p = OneLineParser(prog="spade-study analyze plan",
                      description="Write the pre-registration (plan.md) from the study config, before the data.")
    p.add_argument("--config", type=Path, required=True, help="the study's TOML config")
    p.add_argument("--out", type=Path, required=True, help="the plan file to write (Markdown)")
    p.add_argument("--raters", type=int, default=24, help="planned number of raters who complete (default 24)")
    p.add_argument("--items", type=int, default=100, help="images in the bundle (default 100)")
    p.add_argument("--sims", type=nonnegative_int, default=200,
                   help="simulated studies for the power (default 200; 0: none, see --power)")
    p.add_argument("--power", type=float, default=None, metavar="P",
                   help="state this power (a fraction, from an earlier `analyze power` run) instead of simulating")
    p.add_argument("--permutations", type=int, default=DEFAULT_PERMUTATIONS,
                   help=f"permutations of the primary test (default {DEFAULT_PERMUTATIONS})")
    p.add_argument("--seed", type=int, default=0, help="seed of the primary test and the power simulation")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str], assign: Callable | None = None) -> int:
    """Entry point of `spade-study analyze plan`; `assign` is the study's planner (for the power simulation)."""
    from analysis.cli import UsageError
    from contracts.files import write_text_atomic

    try:
        args = build_parser().parse_args(argv)
        if args.raters < 2 or args.items < 1 or args.permutations < 1:
            raise UsageError("--raters must be >= 2, --items and --permutations >= 1")
        if args.power is not None and not 0 <= args.power <= 1:
            raise UsageError(f"--power must lie in [0, 1], got {args.power}")
        if args.out.is_dir():
            raise UsageError(f"--out {args.out} is a folder; give the plan file's path, e.g. plan.md")
        config, sha = read_study_config(args.config)
        design = design_of(config)
        exclusion_of(config)
    except (UsageError, PlanError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    power = None
    if args.power is not None:
        power = {"power": args.power, "power_lo": args.power, "power_hi": args.power, "sims": 0,
                 "source": "stated with --power"}
    elif args.sims > 0:
        if assign is None:
            print("error: the power simulation needs the study's planner: run `spade-study analyze plan`, or give "
                  "--power", file=sys.stderr)
            return 2
        from analysis.power import run_power

        power_dir = args.out.with_name(args.out.stem + "-power")
        try:
            table = run_power(assign, [args.raters], args.sims, power_dir, tasks_per_rater=design["tasks_per_rater"],
                              n_items=args.items, ratings_per_task=design["ratings_per_task"], seed=args.seed,
                              progress=not args.quiet)
        except ValueError as exc:
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
        row = table.iloc[0]
        power = {"power": float(row["power"]), "power_lo": float(row["power_lo"]), "power_hi": float(row["power_hi"]),
                 "sims": int(row["sims"]),
                 "source": f"`spade-study analyze power`, the paper's rates, results in {power_dir}"}
    plan = make_plan(config, sha, raters=args.raters, items=args.items, power=power,
                     n_permutations=args.permutations, seed=args.seed)
    write_text_atomic(args.out, render_plan(plan))
    print(f"wrote {args.out}: primary test of net agreement, alpha {ALPHA} two-sided, {args.raters} raters"
          + (f", power {100 * power['power']:.1f}%" if power else ""))
    return 0
