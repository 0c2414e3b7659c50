"""The whole analysis of one study: validated responses in, summary.json + tables + figures + report out.

The primary test (`analysis.permutation.primary_test`, design-based, milliseconds) always runs;
the secondary models (`analysis.models.fit_all`) unless `fit_models=False`. Degenerate data
(one rater, an outcome constant within a condition, a variance component at zero) get a
warning in `summary["warnings"]` and the affected model is reported as not fitted or singular.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from analysis import figures, tables
from contracts.files import write_json_atomic, write_text_atomic
from analysis.interrater import comparable_agreement, inter_rater
from analysis.io import ResponsesError, add_outcomes
from contracts.responses import CONDITIONS, TARGETS
from analysis.items import item_table
from analysis.metrics import condition_metrics, differences
from analysis.models import fit_all
from analysis.observer import observer_markdown, observer_summary
from analysis.permutation import DEFAULT_PERMUTATIONS, primary_tests
from analysis.position_bias import position_bias
from analysis.raters import DEFAULT_MIN_CATCH_ACCURACY, failing_catch, rater_table
from analysis.report import render_report
from analysis.verdict import verdicts

SUMMARY_VERSION = 2  # 2: primary, verdict, inter_rater_comparable, warnings, flow; robust intervals
DEFAULT_BOOTSTRAP = 2000


def summarize(responses: pd.DataFrame, *, exclude_failing_catch: bool = False,
              min_catch_accuracy: float = DEFAULT_MIN_CATCH_ACCURACY, seed: int = 0,
              n_boot: int = DEFAULT_BOOTSTRAP, fit_models: bool = True, n_permutations: int = DEFAULT_PERMUTATIONS,
              plan_exclusions: dict | None = None,
              progress: bool = False, observer: dict | None = None) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Compute the summary dict, the per-rater table and the per-item table of validated responses.

    `observer`: machine observer results (`analysis.observer.load_observer`), summarized beside the humans'.
    """
    df = add_outcomes(responses)
    failing = failing_catch(df, min_catch_accuracy)
    excluded = sorted(set(failing if exclude_failing_catch else [])
                      | {r for ids in (plan_exclusions or {}).get("excluded", {}).values() for r in ids})
    raters = rater_table(df, excluded)
    main = df[(df["is_catch"] == 0) & ~df["rater_id"].isin(excluded)]
    if main.empty:
        why = f" or from the {len(excluded)} excluded rater(s)" if excluded else ""
        raise ResponsesError(f"no ratings to analyse: all {len(df)} responses are catch trials{why}")

    per_condition = condition_metrics(main)
    agreement = inter_rater(main)
    for cond in CONDITIONS:
        for key in ("pairs_agree", "pairs_disagree", "pairs_ratio"):
            per_condition[cond][key] = agreement[cond][key]
    primary = primary_tests(main, n_permutations=n_permutations, seed=seed)
    summary: dict = {
        "dense": per_condition["dense"],
        "spade": per_condition["spade"],
        "difference": differences(per_condition),
        "primary": primary,
        "verdict": verdicts(primary),
        "inter_rater": agreement,
        "inter_rater_comparable": comparable_agreement(main, n_boot=n_boot, seed=seed),
        "position_bias": position_bias(main),
        "targets": target_rates(main),
        "input": {
            "responses": int(len(df)),
            "catch_trials": int(df["is_catch"].sum()),
            "raters": int(df["rater_id"].nunique()),
            "raters_failing_catch": failing,
            "min_catch_accuracy": float(min_catch_accuracy),
            "exclude_raters_failing_catch": bool(exclude_failing_catch),
            "plan_exclusions": plan_exclusions,
            "excluded_raters": list(excluded),
            "analysed_ratings": int(len(main)),
            "analysed_raters": int(main["rater_id"].nunique()),
            "seed": int(seed),
            "bootstrap_replicates": int(n_boot),
            "permutations": int(n_permutations),
        },
        "summary_version": SUMMARY_VERSION,
    }
    if fit_models and main["rater_id"].nunique() < 2:
        # Nothing to fit: a rater variance from one rater is not identifiable (degenerate_cases says so).
        summary["models"] = {"mixed_net": {}, "mixed_decided": {}, "gee_net": {}, "gee_decided": {}, "bootstrap": None}
    elif fit_models:
        with tqdm(total=5, desc="models", unit="step", disable=not progress, leave=False) as bar:
            summary["models"] = fit_all(main, seed=seed, n_boot=n_boot,
                                        progress=lambda name: (bar.set_postfix_str(name), bar.update()))
    else:
        summary["models"] = None
    summary["warnings"] = degenerate_cases(main, summary)
    attach_robust_intervals(summary)
    if observer is not None:
        summary["observer"] = observer_summary(observer, main)
    return summary, raters, item_table(main)


def target_rates(main: pd.DataFrame) -> dict[str, dict[str, object]]:
    """Per target (true, predicted) and condition: counts and rates with Wilson intervals."""
    out: dict[str, dict[str, object]] = {}
    for target in TARGETS:
        out[target] = condition_metrics(main[main["target"] == target])
    return out


# Below this, a variance component's estimate is reported as at its boundary (a singular fit).
SINGULAR_SD = 0.05
MODEL_OUTCOMES = {"net": "correct_region", "decided": "decided"}
MIN_CLUSTERS = 10  # fewer raters or images than this: the cluster bootstraps are flagged as unreliable


def degenerate_cases(main: pd.DataFrame, summary: dict) -> list[str]:
    """Warnings for data the models cannot speak to; the affected entries of summary["models"] are marked."""
    warnings: list[str] = []
    models = summary.get("models") or {}
    n_raters = int(main["rater_id"].nunique())
    if n_raters < 2:
        warnings.append(f"only {n_raters} rater: rater variation cannot be estimated; the mixed models, GEE and "
                        "cluster bootstraps are not reported")
        for key in [k for k in models if k != "bootstrap"]:
            models[key] = {"fitted": False, "reason": "one rater: the rater variance is not identifiable"}
        if models:
            models["bootstrap"] = None
    for outcome, col in MODEL_OUTCOMES.items():
        constant = [c for c in CONDITIONS if (main["condition"] == c).any()
                    and main.loc[main["condition"] == c, col].nunique() == 1]
        if constant:
            what = ", ".join(f"every {c} rating has {col} = {int(main.loc[main['condition'] == c, col].iloc[0])}"
                             for c in constant)
            warnings.append(f"separation in {outcome}: {what}; the log-odds ratio is infinite, so the models of "
                            f"{outcome} are not reported (the permutation test and the rates still are)")
            for kind in ("mixed", "gee"):
                if f"{kind}_{outcome}" in models:
                    models[f"{kind}_{outcome}"] = {"fitted": False,
                                                   "reason": f"separation: {what} (no finite odds ratio)"}
    for key, fit in models.items():
        if key.startswith("mixed_") and isinstance(fit, dict) and fit.get("fitted"):
            column = MODEL_OUTCOMES[key.removeprefix("mixed_")]
            zero = [k[:-3] for k, v in fit.items() if k.endswith("_sd") and k != "sd" and isinstance(v, (int, float))
                    and (v < SINGULAR_SD or (k[:-3] in CROSSED_TERMS and
                                             moment_variance(main, column, CROSSED_TERMS[k[:-3]]) <= 0))]
            if zero:
                fit["singular"] = zero
                warnings.append(f"{key}: singular fit, no {' and no '.join(zero)} variation beyond chance (its "
                                f"one-way moment estimate is <= 0, or the fitted SD < {SINGULAR_SD}); variational "
                                "Bayes still reports an SD there (the prior keeps it off 0): not a finding")
    boot = models.get("bootstrap") or {}
    flat = []
    for scheme, result in boot.items():
        for metric in ("decision_rate", "agreement", "net"):
            ci = (result.get(metric) or {}).get("ci")
            if ci is not None and ci[1] - ci[0] < 1e-12:
                # A zero-width interval from resampling too few clusters is no interval: drop it.
                result[metric]["ci"] = None
                flat.append(f"{metric.replace('_', ' ')} ({scheme.replace('_', ' ')})")
    if flat:
        warnings.append(f"cluster bootstrap: every replicate gave the same difference for {', '.join(flat)} "
                        "(too few raters or images to resample); no interval reported")
    few = [f"{len_} {what}" for len_, what in ((n_raters, "raters"), (int(main["item_id"].nunique()), "images"))
           if 2 <= len_ < MIN_CLUSTERS]
    if few and boot:
        warnings.append(f"only {' and '.join(few)}: cluster bootstrap intervals rest on very few clusters and "
                        "are unreliable")
    for outcome, test in summary["primary"].items():
        if test.get("reason"):
            warnings.append(f"primary test of {outcome} not run: {test['reason']}")
    return warnings


# Random-effect terms of the mixed model that are crossed (not nested in one another), and their columns.
CROSSED_TERMS = {"rater": "rater_id", "item": "item_id"}


def moment_variance(main: pd.DataFrame, column: str, group: str) -> float:
    """One-way ANOVA (moment) estimate of the between-group variance of `column` around the condition means.

    lme4 reports a fit as singular when a variance sits on its boundary, 0; a moment estimate
    <= 0 says the same thing cheaply: the groups vary no more than chance alone would make them.
    Variational Bayes cannot say it (its log-SD prior keeps every SD away from 0), hence this check.
    """
    resid = main[column] - main.groupby("condition")[column].transform("mean")
    sizes = main[group].value_counts()
    n, g = len(main), len(sizes)
    if g < 2 or n <= g:
        return float("nan")
    means = resid.groupby(main[group]).transform("mean")
    between = float(((means - resid.mean()) ** 2).sum()) / (g - 1)
    within = float(((resid - means) ** 2).sum()) / (n - g)
    n0 = (n - float((sizes ** 2).sum()) / n) / (g - 1)
    return (between - within) / n0


ROBUST_SOURCES = {"net": "net", "decision_rate": "decided"}


def attach_robust_intervals(summary: dict) -> None:
    """Give each SPADE - dense difference its cluster-robust interval (primary test, else two-way bootstrap)."""
    boot = (summary.get("models") or {}).get("bootstrap") or {}
    for metric, diff in summary["difference"].items():
        robust = {"ci": None, "p": None, "method": "not run"}
        test = summary["primary"].get(ROBUST_SOURCES.get(metric, ""), {})
        if test.get("ci_low") is not None:
            robust = {"ci": [test["ci_low"], test["ci_high"]], "p": test["p_value"],
                      "method": "primary permutation test, inverted"}
        elif boot.get("raters_and_items", {}).get(metric, {}).get("ci") is not None:
            robust = {"ci": boot["raters_and_items"][metric]["ci"], "p": None,
                      "method": "two-way cluster bootstrap (raters x items), percentile"}
        diff["robust_ci"], diff["robust_p"], diff["robust_method"] = robust["ci"], robust["p"], robust["method"]


def write_outputs(summary: dict, raters: pd.DataFrame, items: pd.DataFrame, out_dir: str | Path,
                  source: str = "", plan: str | None = None, provenance: dict | None = None) -> list[Path]:
    """Write summary.json, the tables (CSV/MD/TeX), the figures (PNG/SVG) and report.md into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_json_atomic(out / "summary.json", summary)]
    headline, headline_shown = tables.headline_table(summary)
    paths += tables.write_table(headline, out, "headline", headline_shown)
    verdict, verdict_shown = tables.verdict_table(summary)
    paths += tables.write_table(verdict, out, "verdict", verdict_shown)
    paper = tables.paper_table(summary)
    paths += tables.write_table(paper, out, "paper_comparison", tables.paper_display(paper))
    if summary.get("models"):
        models = tables.models_table(summary)
        paths += tables.write_table(models, out, "models", tables.models_display(models))
    ir = tables.interrater_table(summary)
    paths += tables.write_table(ir, out, "inter_rater", tables.interrater_display(ir))
    comparable, comparable_shown = tables.comparable_table(summary)
    paths += tables.write_table(comparable, out, "inter_rater_comparable", comparable_shown)
    paths += tables.write_table(raters, out, "raters", tables.raters_display(raters))
    paths += tables.write_table(items, out, "items", tables.items_display(items))
    paths += figures.figure4(summary, out / "figure4")
    paths += figures.effect_plot(summary, out / "effect")
    paths += figures.item_panel(items, out / "items")
    paths += figures.target_panel(summary, out / "targets")
    paths += figures.rater_net(raters, out / "rater_net")
    paths.append(write_text_atomic(out / "report.md", render_report(summary, source, plan=plan,
                                                                       provenance=provenance)))
    if summary.get("observer"):  # the machine observer's section (analysis.observer) closes the report
        report = out / "report.md"
        write_text_atomic(report, report.read_text(encoding="utf-8") + "\n" + observer_markdown(summary))
    return paths


def run_analysis(responses: pd.DataFrame, out_dir: str | Path, *, source: str = "", progress: bool = False,
                 plan: str | None = None, provenance: dict | None = None, **options) -> dict:
    """`summarize` then `write_outputs`; returns the summary (options as in `summarize`; `plan`: plan.md text)."""
    summary, raters, items = summarize(responses, progress=progress, **options)
    write_outputs(summary, raters, items, out_dir, source, plan=plan, provenance=provenance)
    return summary


PROVENANCE_PACKAGES = ("spade-study", "numpy", "pandas", "scipy", "statsmodels", "krippendorff", "matplotlib")


def provenance(input_path: str | Path | None) -> dict:
    """The input file's sha256 and the versions of Python and the packages the numbers come from."""
    import hashlib
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    sha = None
    if input_path is not None and Path(input_path).is_file():
        digest = hashlib.sha256()
        with open(input_path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        sha = digest.hexdigest()
    return {"sha256": sha, "versions": versions}
