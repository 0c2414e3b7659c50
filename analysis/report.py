"""The replication report (report.md): the measured study beside the published one."""
from __future__ import annotations

import pandas as pd

from analysis.paper import COUNTS, PUBLISHED, RATERS, RATINGS, STATED_DIFFERENCES
from analysis.tables import (RATE_LABELS, interrater_display, interrater_table, models_display, models_table,
                             paper_display, paper_table, pct, pct_ci, pct_with_ci, pvalue, to_markdown)


def _verdict(inside: bool | None) -> str:
    return {True: "inside", False: "**outside**", None: "--"}[inside]


def render_report(summary: dict, source: str = "") -> str:
    """Markdown text of the replication report."""
    inp = summary["input"]
    s, d = summary["spade"], summary["dense"]
    lines = ["# SPADE human study: replication report", ""]
    lines += [
        f"Input: {source + ', ' if source else ''}{inp['responses']} responses from {inp['raters']} raters "
        f"({inp['catch_trials']} catch trials). Analysed: {inp['analysed_ratings']} ratings "
        f"({s['n']} SPADE, {d['n']} dense) from {inp['analysed_raters']} raters; "
        f"paper: {RATINGS} ratings ({COUNTS['spade']['n']} SPADE, {COUNTS['dense']['n']} dense) from {RATERS} raters.",
        "",
    ]
    failing = inp["raters_failing_catch"]
    if inp["exclude_raters_failing_catch"]:
        lines.append(f"Excluded {len(failing)} rater(s) with catch accuracy below {inp['min_catch_accuracy']:.2f}: "
                     f"{', '.join(failing) if failing else 'none'}.")
    else:
        lines.append(f"No rater excluded; {len(failing)} rater(s) have catch accuracy below "
                     f"{inp['min_catch_accuracy']:.2f} ({', '.join(failing) if failing else 'none'}); "
                     "rerun with `--exclude-raters-failing-catch` to drop them.")
    lines += ["", "## Headline, beside the paper", "",
              "Rates in percent with Wilson 95% intervals; \"inside\" says whether the published value lies in "
              "the measured interval. Catch trials excluded.", ""]
    lines.append(to_markdown(paper_display(paper_table(summary))))

    lines += ["", "## SPADE - dense", ""]
    rows = []
    boot = (summary.get("models") or {}).get("bootstrap")
    for m, label in RATE_LABELS.items():
        diff = summary["difference"][m]
        published = PUBLISHED["spade"][m] - PUBLISHED["dense"][m]
        stated = STATED_DIFFERENCES.get(m)
        rows.append({
            "metric": label,
            "paper (from its rates)": f"{published:.1f}" + (
                f" (text: {stated:.1f})" if stated is not None and abs(stated - published) > 0.05 else ""),
            "measured [Newcombe 95% CI]": pct_with_ci(diff["estimate"], diff["ci"]),
            "z-test p (descriptive)": pvalue(diff["p"]),
            "bootstrap raters x items 95% CI": (pct_ci(boot["raters_and_items"][m]["ci"]) or "--") if boot else "not run",
        })
    lines.append(to_markdown(pd.DataFrame(rows)))
    lines += ["", "Differences in points. The Newcombe interval and the z-test treat ratings as independent, "
              "which they are not (each rater gives ~30 ratings, each image appears in both conditions): "
              "read them as descriptive. The clustered tests follow."]
    if abs(PUBLISHED["spade"]["agreement"] - PUBLISHED["dense"]["agreement"] - STATED_DIFFERENCES["agreement"]) > 0.05:
        lines += ["", "Note on the paper: its text says agreement was \"5.3% higher\" with SPADE, but its own "
                  f"rates give {PUBLISHED['spade']['agreement']} - {PUBLISHED['dense']['agreement']} = "
                  f"{PUBLISHED['spade']['agreement'] - PUBLISHED['dense']['agreement']:.1f} points; the counts "
                  "behind the rates (271/339 vs 203/276) agree with 6.3."]

    models = summary.get("models")
    lines += ["", "## Clustered tests", ""]
    if models:
        lines.append(to_markdown(models_display(models_table(summary))))
        lines += ["", "Primary: logistic mixed model with crossed random intercepts for rater and item "
                  "(statsmodels BinomialBayesMixedGLM, variational Bayes); the interval is the 95% posterior "
                  "interval of the odds ratio and p is the normal approximation of posterior mean / SD. Mean-field "
                  "variational Bayes can understate posterior SDs, hence the checks: GEE clustered by rater "
                  "(robust SEs) and percentile intervals of the difference in points from cluster bootstraps. "
                  "The two-way bootstrap (raters and items resampled together) is conservative when each rater "
                  "sees only some images, since it counts rating-level noise twice; the one-way bootstraps each "
                  "ignore the other source of variation, so the truth lies between them."]
        mn = models.get("mixed_net", {})
        if mn.get("fitted"):
            lines += ["", f"Estimated between-rater SD {mn['rater_sd']:.2f} and between-item SD {mn['item_sd']:.2f} "
                      "(log-odds, net correctness)."]
    else:
        lines.append("Not run (`--no-models`).")

    lines += ["", "## Inter-rater agreement", "",
              "Pairs of raters who both decided on the same task, compared on the region chosen (not the letter, "
              "which is randomized per rater). Paper: SPADE 275 / 83 (3.31), dense 247 / 89 (2.77).", ""]
    lines.append(to_markdown(interrater_display(interrater_table(summary))))
    lines += ["", "Pairs are not independent either (one rating enters several pairs); no test is attached to "
              "the ratio. The paper's ratios are truncated, not rounded (247/89 = 2.775 is printed 2.77). Krippendorff's alpha is nominal over tasks; Fleiss' kappa uses the tasks with the most "
              "common number of ratings (\"kappa on\")."]

    lines += ["", "## How \"can't decide\" is handled", "",
              "Agreement counts decided ratings only; net agreement counts \"can't decide\" as not agreeing (the "
              "paper's product). If \"can't decide\" were a coin flip instead, net agreement would be "
              f"{pct(s['net_undecided_as_guess'])}% with SPADE and {pct(d['net_undecided_as_guess'])}% dense "
              f"(difference {pct(_diff(s['net_undecided_as_guess'], d['net_undecided_as_guess']))} points)."]

    pb = summary["position_bias"]
    lines += ["", "## A/B position bias", "",
              f"Of {pb['decided']} decided answers, {pct(pb['share_a'])}% {pct_ci(pb['share_a_ci'])} chose A "
              f"(exact binomial test against 50%: p = {pvalue(pb['binomial_p'])}); the target's region was shown as "
              f"A in {pct(pb['target_shown_as_a'])}% of ratings. Agreement when the target was A: "
              f"{pct(pb['agreement_target_A'])}%, when B: {pct(pb['agreement_target_B'])}%."]

    lines += ["", "## Files", "",
              "`summary.json` (all numbers), `headline.*`, `paper_comparison.*`, `models.*`, `inter_rater.*`, "
              "`raters.*`, `items.*` (CSV, Markdown, LaTeX), `figure4.png|svg`, `rater_agreement.png|svg`.", ""]
    return "\n".join(lines)


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b
