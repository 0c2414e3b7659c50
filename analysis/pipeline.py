"""The whole analysis of one study: validated responses in, summary.json + tables + figures + report out."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from analysis import figures, tables
from contracts.files import write_json_atomic, write_text_atomic
from analysis.interrater import inter_rater
from analysis.io import ResponsesError, add_outcomes
from contracts.responses import CONDITIONS
from analysis.items import item_table
from analysis.metrics import condition_metrics, differences
from analysis.models import fit_all
from analysis.observer import observer_markdown, observer_summary
from analysis.position_bias import position_bias
from analysis.raters import DEFAULT_MIN_CATCH_ACCURACY, failing_catch, rater_table
from analysis.report import render_report

SUMMARY_VERSION = 1
DEFAULT_BOOTSTRAP = 2000


def summarize(responses: pd.DataFrame, *, exclude_failing_catch: bool = False,
              min_catch_accuracy: float = DEFAULT_MIN_CATCH_ACCURACY, seed: int = 0,
              n_boot: int = DEFAULT_BOOTSTRAP, fit_models: bool = True,
              progress: bool = False, observer: dict | None = None) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Compute the summary dict, the per-rater table and the per-item table of validated responses.

    `observer`: machine observer results (`analysis.observer.load_observer`), summarized beside the humans'.
    """
    df = add_outcomes(responses)
    failing = failing_catch(df, min_catch_accuracy)
    excluded = failing if exclude_failing_catch else []
    raters = rater_table(df, excluded)
    main = df[(df["is_catch"] == 0) & ~df["rater_id"].isin(excluded)]
    if main.empty:
        why = " or from raters failing the catch trials" if excluded else ""
        raise ResponsesError(f"no ratings to analyse: all {len(df)} responses are catch trials{why}")

    per_condition = condition_metrics(main)
    agreement = inter_rater(main)
    for cond in CONDITIONS:
        for key in ("pairs_agree", "pairs_disagree", "pairs_ratio"):
            per_condition[cond][key] = agreement[cond][key]
    summary: dict = {
        "dense": per_condition["dense"],
        "spade": per_condition["spade"],
        "difference": differences(per_condition),
        "inter_rater": agreement,
        "position_bias": position_bias(main),
        "input": {
            "responses": int(len(df)),
            "catch_trials": int(df["is_catch"].sum()),
            "raters": int(df["rater_id"].nunique()),
            "raters_failing_catch": failing,
            "min_catch_accuracy": float(min_catch_accuracy),
            "exclude_raters_failing_catch": bool(exclude_failing_catch),
            "excluded_raters": list(excluded),
            "analysed_ratings": int(len(main)),
            "analysed_raters": int(main["rater_id"].nunique()),
            "seed": int(seed),
        },
        "summary_version": SUMMARY_VERSION,
    }
    if fit_models:
        with tqdm(total=5, desc="models", unit="step", disable=not progress, leave=False) as bar:
            summary["models"] = fit_all(main, seed=seed, n_boot=n_boot,
                                        progress=lambda name: (bar.set_postfix_str(name), bar.update()))
    else:
        summary["models"] = None
    if observer is not None:
        summary["observer"] = observer_summary(observer, main)
    return summary, raters, item_table(main)


def write_outputs(summary: dict, raters: pd.DataFrame, items: pd.DataFrame, out_dir: str | Path,
                  source: str = "") -> list[Path]:
    """Write summary.json, the tables (CSV/MD/TeX), the figures (PNG/SVG) and report.md into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_json_atomic(out / "summary.json", summary)]
    headline, headline_shown = tables.headline_table(summary)
    paths += tables.write_table(headline, out, "headline", headline_shown)
    paper = tables.paper_table(summary)
    paths += tables.write_table(paper, out, "paper_comparison", tables.paper_display(paper))
    if summary.get("models"):
        models = tables.models_table(summary)
        paths += tables.write_table(models, out, "models", tables.models_display(models))
    ir = tables.interrater_table(summary)
    paths += tables.write_table(ir, out, "inter_rater", tables.interrater_display(ir))
    paths += tables.write_table(raters, out, "raters")
    paths += tables.write_table(items, out, "items")
    paths += figures.figure4(summary, out / "figure4")
    paths += figures.rater_agreement(raters, summary, out / "rater_agreement")
    paths.append(write_text_atomic(out / "report.md", render_report(summary, source)))
    if summary.get("observer"):  # the machine observer's section (analysis.observer) closes the report
        report = out / "report.md"
        write_text_atomic(report, report.read_text(encoding="utf-8") + "\n" + observer_markdown(summary))
    return paths


def run_analysis(responses: pd.DataFrame, out_dir: str | Path, *, source: str = "", progress: bool = False,
                 **options) -> dict:
    """`summarize` then `write_outputs`; returns the summary (options as in `summarize`)."""
    summary, raters, items = summarize(responses, progress=progress, **options)
    write_outputs(summary, raters, items, out_dir, source)
    return summary
