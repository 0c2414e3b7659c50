"""`spade-study analyze`: analyze a study's responses; `spade-study analyze power`: plan a study.

    spade-study analyze (--db STUDY.db | --responses RESPONSES.csv) --out DIR
                        [--exclude-raters-failing-catch] [--min-catch-accuracy X]
                        [--seed S] [--bootstrap B] [--no-models] [--observer BUNDLE]
    spade-study analyze power --raters 24 --tasks-per-rater 31 [--items 100]
                        [--ratings-per-task 2] [--sims 500] ...   (see analysis.power)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from analysis.io import ResponsesError, load_responses


class UsageError(Exception):
    """A command-line mistake, reported as one `error: ...` line."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Raise the message as a UsageError."""
        raise UsageError(message)


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= x <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {text}")
    return x


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        x = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if x < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return x


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    x = nonnegative_int(text)
    if x < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return x


def build_parser() -> OneLineParser:
    """The parser of `spade-study analyze`."""
    p = OneLineParser(prog="spade-study analyze",
                      description="Analyze a study's responses: summary.json, tables, figures and report.md in --out. "
                                  "`spade-study analyze power --help` plans a study.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--db", type=Path, help="study database (reads its responses_export view, read-only)")
    src.add_argument("--responses", type=Path, help="responses CSV exported by the study app")
    p.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    p.add_argument("--exclude-raters-failing-catch", action="store_true",
                   help="drop every rating of raters whose catch accuracy is below --min-catch-accuracy")
    p.add_argument("--min-catch-accuracy", type=fraction, default=1.0,
                   help="catch accuracy a rater needs to pass (default 1.0: every catch trial right)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the model fits (default 0)")
    p.add_argument("--bootstrap", type=nonnegative_int, default=2000, metavar="B",
                   help="cluster bootstrap replicates (default 2000)")
    p.add_argument("--permutations", type=positive_int, default=9999, metavar="P",
                   help="permutations of the primary test (default 9999)")
    p.add_argument("--plan", type=Path, default=None,
                   help="the pre-registration written by `analyze plan`: quoted in the report, deviations flagged")
    p.add_argument("--no-models", action="store_true", help="skip the mixed models, GEE and bootstrap")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--observer", type=Path, default=None, metavar="PATH",
                   help="machine observer results (a bundle, its observer/ folder or one CSV) to report beside the humans'")
    return p


def main(argv: list[str] | None = None, assign: Callable | None = None) -> int:
    """Entry point of `spade-study analyze` (and, with argv[0] == 'power', of `analyze power`).

    `assign` is the study's assignment planner for `analyze power`; it is passed in
    by the command-line glue because `analysis` never imports `study`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "power":
        from analysis import power

        # `spade_study/analyze.py` (command-line glue) passes study.assignment.simulate_assignments.
        return power.main(argv[1:], assign)
    if argv and argv[0] == "plan":
        from analysis import plan

        return plan.main(argv[1:], assign)
    if argv and argv[0] == "export":
        from analysis import export

        return export.main(argv[1:])
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} exists and is not a folder", file=sys.stderr)
        return 2
    plan_text = None
    try:
        if args.plan is not None:
            from analysis.plan import PlanError, parse_plan

            if not args.plan.is_file():
                raise ResponsesError(f"--plan {args.plan}: no such file")
            plan_text = args.plan.read_text(encoding="utf-8")
            try:
                parse_plan(plan_text, str(args.plan))
            except PlanError as exc:
                raise ResponsesError(str(exc)) from None
        responses = load_responses(db=args.db, csv=args.responses)
    except ResponsesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    observer = None
    if args.observer is not None:
        from analysis.observer import ObserverError, load_observer

        try:
            observer = load_observer(args.observer, responses)
        except ObserverError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    # Heavy imports (statsmodels models, matplotlib) only once the input is known to be good.
    from analysis.pipeline import provenance, run_analysis
    from analysis.tables import HEADLINE_NOTE, headline_table, to_markdown

    source = f"--db {args.db}" if args.db else f"--responses {args.responses}"
    rule_exclusions = None
    if plan_text is not None:
        from analysis.plan import parse_plan, plan_exclusions, read_raters_table

        plan = parse_plan(plan_text)
        if plan["exclusion"]:
            rule_exclusions = plan_exclusions(plan, responses, read_raters_table(args.db) if args.db else None)
    try:
        summary = run_analysis(responses, args.out, source=source, progress=not args.quiet, plan=plan_text,
                               provenance=provenance(args.db or args.responses),
                               exclude_failing_catch=args.exclude_raters_failing_catch,
                               min_catch_accuracy=args.min_catch_accuracy, seed=args.seed,
                               n_boot=args.bootstrap, n_permutations=args.permutations, fit_models=not args.no_models,
                               observer=observer, plan_exclusions=rule_exclusions)
    except ResponsesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(to_markdown(headline_table(summary)[1]))
    print(HEADLINE_NOTE)
    v = summary["verdict"]["net"]
    print(f"replication verdict (net agreement, primary): {v['verdict']}")
    for warning in summary.get("warnings", []):
        print(f"warning: {warning}")
    inp = summary["input"]
    if inp["excluded_raters"]:
        why = "the plan's exclusion rules" if rule_exclusions else "catch trials"
        print(f"excluded {len(inp['excluded_raters'])} rater(s) failing {why}: {', '.join(inp['excluded_raters'])}")
    elif inp["raters_failing_catch"]:
        print(f"note: {len(inp['raters_failing_catch'])} rater(s) fail the catch trials; "
              "--exclude-raters-failing-catch drops them")
    if summary.get("observer"):
        from analysis.observer import observer_line

        print(observer_line(summary["observer"]))
    print(f"wrote {args.out}/summary.json, tables, figures and report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
