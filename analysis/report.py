"""The replication report (report.md): the measured study beside the published one."""
from __future__ import annotations

import pandas as pd

from analysis.paper import COUNTS, PUBLISHED, RATERS, RATINGS, STATED_DIFFERENCES
from analysis.plan import JSON_FENCE, deviations, parse_plan
from analysis.tables import (RATE_LABELS, comparable_table, interrater_display, interrater_table, models_display,
                             models_table, paper_display, paper_table, pct, pct_ci, pct_with_ci, pvalue, to_markdown,
                             verdict_table)


def render_report(summary: dict, source: str = "", plan: str | None = None, provenance: dict | None = None) -> str:
    """Markdown text of the replication report (`plan`: the pre-registration's text, quoted and checked)."""
    inp = summary["input"]
    s, d = summary["spade"], summary["dense"]
    lines = ["# SPADE human study: replication report", ""]
    sha = (provenance or {}).get("sha256")
    lines += [
        f"Input: {source + ', ' if source else ''}{'sha256 ' + sha + ', ' if sha else ''}"
        f"{inp['responses']} responses from {inp['raters']} raters "
        f"({inp['catch_trials']} catch trials). Analysed: {inp['analysed_ratings']} ratings "
        f"({s['n']} SPADE, {d['n']} dense) from {inp['analysed_raters']} raters; "
        f"paper: {RATINGS} ratings ({COUNTS['spade']['n']} SPADE, {COUNTS['dense']['n']} dense) from {RATERS} raters.",
        "",
    ]
    failing = inp["raters_failing_catch"]
    if inp.get("plan_exclusions"):
        lines.append(f"Excluded by the plan's declared rules: {', '.join(inp['excluded_raters']) or 'nobody'}.")
    elif inp["exclude_raters_failing_catch"]:
        lines.append(f"Excluded {len(failing)} rater(s) with catch accuracy below {inp['min_catch_accuracy']:.2f}: "
                     f"{', '.join(failing) if failing else 'none'}.")
    else:
        lines.append(f"No rater excluded; {len(failing)} rater(s) have catch accuracy below "
                     f"{inp['min_catch_accuracy']:.2f} ({', '.join(failing) if failing else 'none'}); "
                     "rerun with `--exclude-raters-failing-catch` to drop them.")
    lines += _flow(summary)
    lines += _plan_section(summary, plan)
    lines += _primary_section(summary)
    if summary.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in summary["warnings"]]
    lines += ["", "## Secondary: each rate beside the paper", "",
              "Rates in percent with Wilson 95% intervals (descriptive); \"inside\" says whether the published value "
              "lies in the measured interval. Catch trials excluded.", ""]
    lines.append(to_markdown(paper_display(paper_table(summary))))

    lines += ["", "## Secondary: SPADE - dense in each rate", ""]
    rows = []
    for m, label in RATE_LABELS.items():
        diff = summary["difference"][m]
        published = PUBLISHED["spade"][m] - PUBLISHED["dense"][m]
        stated = STATED_DIFFERENCES.get(m)
        rows.append({
            "metric": label,
            "paper (from its rates)": f"{published:.1f}" + (
                f" (text: {stated:.1f})" if stated is not None and abs(stated - published) > 0.05 else ""),
            "measured [clustered 95% CI]": pct_with_ci(diff["estimate"], diff.get("robust_ci")) if diff.get(
                "robust_ci") else f"{pct(diff['estimate'])} [no interval]",
            "clustered interval from": diff.get("robust_method", "--"),
            "descriptive [Newcombe 95% CI]": pct_with_ci(diff["estimate"], diff["ci"]),
        })
    lines.append(to_markdown(pd.DataFrame(rows)))
    lines += ["", "Differences in points. The clustered intervals keep raters, images and tasks together; the "
              "Newcombe interval treats the ratings as independent, which they are not (each rater gives ~30 "
              "ratings, each image appears in both conditions): it is descriptive only, too narrow, and not a test."]
    if abs(PUBLISHED["spade"]["agreement"] - PUBLISHED["dense"]["agreement"] - STATED_DIFFERENCES["agreement"]) > 0.05:
        lines += ["", "Note on the paper: its text says agreement was \"5.3% higher\" with SPADE, but its own "
                  f"rates give {PUBLISHED['spade']['agreement']} - {PUBLISHED['dense']['agreement']} = "
                  f"{PUBLISHED['spade']['agreement'] - PUBLISHED['dense']['agreement']:.1f} points; the counts "
                  "behind the rates (271/339 vs 203/276) agree with 6.3."]

    models = summary.get("models")
    lines += ["", "## Secondary: models", ""]
    if models:
        lines.append(to_markdown(models_display(models_table(summary))))
        lines += ["", "Secondary: logistic mixed model with crossed random intercepts for rater and item "
                  "(statsmodels BinomialBayesMixedGLM, variational Bayes); the interval is the 95% posterior "
                  "interval of the odds ratio and p is the normal approximation of posterior mean / SD. Mean-field "
                  "variational Bayes can understate posterior SDs, hence the checks: GEE clustered by rater "
                  "(robust SEs) and percentile intervals of the difference in points from cluster bootstraps. "
                  "The two-way bootstrap (raters and items resampled together) is conservative when each rater "
                  "sees only some images, since it counts rating-level noise twice; the one-way bootstraps each "
                  "ignore the other source of variation, so the truth lies between them."]
        mn = models.get("mixed_net") or {}
        if mn.get("fitted"):
            parts = [f"{k[:-3].replace('_', ' x ')} {v:.2f}" + (" (singular: at ~0)" if k[:-3] in mn.get("singular", [])
                                                                else "")
                     for k, v in mn.items() if k.endswith("_sd") and k != "sd" and isinstance(v, (int, float))]
            lines += ["", f"Estimated random-effect SDs (log-odds, net agreement): {', '.join(parts)}. A singular "
                      "component is reported as such: the data cannot tell it from 0, and its value is not a finding."]
    else:
        lines.append("Not run (`--no-models`).")

    ca = summary["inter_rater_comparable"]
    lines += ["", "## Secondary: inter-rater agreement", "",
              f"Both conditions on the same {ca['strata_pairable']} (image, target) strata whose dense and SPADE tasks "
              "each have at least two decided ratings; Fleiss' kappa (3 categories, \"can't decide\" included) on the "
              f"{ca['strata_equal']} strata whose two tasks have {ca['ratings_per_task_equal'] or '--'} ratings each. "
              f"Intervals: percentile, {ca['replicates']} bootstrap replicates of strata. \"Chance\" is the share of "
              "agreeing pairs that independent raters with the condition's agreement rate would give.", ""]
    lines.append(to_markdown(comparable_table(summary)[1]))
    lines += ["", "Raw pair counts (as in the authors' review answer; paper: SPADE 275 / 83 (3.31), dense 247 / 89 "
              "(2.77)). They grow with the number of ratings per task, a design choice, so they are comparable "
              "neither across studies nor across conditions with different task sets:", ""]
    lines.append(to_markdown(interrater_display(interrater_table(summary))))
    lines += ["", "Pairs are not independent (one rating enters several pairs); no test is attached to the ratio. "
              "The paper's ratios are truncated, not rounded (247/89 = 2.775 is printed 2.77)."]

    lines += ["", "## Secondary: how \"can't decide\" is handled", "",
              "Agreement counts decided ratings only; net agreement counts \"can't decide\" as not agreeing (the "
              "paper's product). If \"can't decide\" were a coin flip instead, net agreement would be "
              f"{pct(s['net_undecided_as_guess'])}% with SPADE and {pct(d['net_undecided_as_guess'])}% dense "
              f"(difference {pct(_diff(s['net_undecided_as_guess'], d['net_undecided_as_guess']))} points)."]

    pb = summary["position_bias"]
    lines += ["", "## Secondary: A/B position bias", "",
              f"Of {pb['decided']} decided answers, {pct(pb['share_a'])}% {pct_ci(pb['share_a_ci'])} chose A "
              f"(exact binomial test against 50%: p = {pvalue(pb['binomial_p'])}); the target's region was shown as "
              f"A in {pct(pb['target_shown_as_a'])}% of ratings. Agreement when the target was A: "
              f"{pct(pb['agreement_target_A'])}%, when B: {pct(pb['agreement_target_B'])}%."]

    lines += ["", "## Software", ""]
    versions = (provenance or {}).get("versions") or {}
    lines.append(", ".join(f"{k} {v}" for k, v in versions.items()) or "not recorded")
    lines += ["", f"Seed {inp['seed']}; {inp.get('permutations', '--')} permutations; "
              f"{inp.get('bootstrap_replicates', '--')} bootstrap replicates.", ""]
    lines += ["## Files", "",
              "`summary.json` (all numbers), `headline.*`, `verdict.*`, `paper_comparison.*`, `models.*`, "
              "`inter_rater.*`, `inter_rater_comparable.*`, `raters.*`, `items.*` (CSV, Markdown, LaTeX), "
              "`figure4`, `effect`, `items`, `targets`, `rater_net` (PNG and SVG).", ""]
    return "\n".join(lines)


def _p_phrase(p: float | None) -> str:
    """'= 0.012' or '< 0.001'."""
    text = pvalue(p)
    return text if text.startswith("<") else f"= {text}"


def _flow(summary: dict) -> list[str]:
    """Participant flow: raters and ratings from the input to the analysis."""
    inp = summary["input"]
    excluded = len(inp["excluded_raters"])
    return ["", "## Participant flow", "",
            "| step | raters | ratings |", "|---|---:|---:|",
            f"| in the data (answered at least one task) | {inp['raters']} | {inp['responses']} |",
            f"| catch trials (left out of every outcome) | | {inp['catch_trials']} |",
            f"| failing the catch rule (accuracy < {inp['min_catch_accuracy']:.2f}) | {len(inp['raters_failing_catch'])} | |",
            *[f"| failing the plan's rule {rule} | {len(ids)} | |"
              for rule, ids in ((inp.get("plan_exclusions") or {}).get("excluded") or {}).items()],
            f"| excluded | {excluded} | {inp['responses'] - inp['catch_trials'] - inp['analysed_ratings']} |",
            f"| analysed | {inp['analysed_raters']} | {inp['analysed_ratings']} |"]


def _plan_section(summary: dict, plan_text: str | None) -> list[str]:
    """The pre-registration, quoted, and the deviations from it."""
    lines = ["", "## Pre-registration", ""]
    if plan_text is None:
        return lines + ["No plan given (`--plan plan.md`, written by `spade-study analyze plan` before the data): "
                        "read every test below as exploratory."]
    plan = parse_plan(plan_text)
    p = plan["primary"]
    lines.append(f"Plan written {plan['written_at']} (config sha256 `{plan['config_sha256'][:16]}...`): primary "
                 f"outcome net agreement, {p['test']} test, alpha {p['alpha']}, {p['sided']}; {plan['raters']} raters; "
                 f"exclusions: {', '.join(f'{k} = {v}' for k, v in plan['exclusion'].items()) or 'none'}.")
    devs = deviations(plan, summary)
    lines += ["", "Deviations from the plan:" if devs else "Deviations from the plan: none."]
    lines += [f"- **{d}**" for d in devs]
    lines += ["", "<details><summary>The plan as written</summary>", "",
              *["> " + ln if ln else ">" for ln in JSON_FENCE.sub("", plan_text).rstrip().splitlines()], "", "</details>"]
    return lines


def _primary_section(summary: dict) -> list[str]:
    """The primary test and the replication verdict."""
    t = summary["primary"]["net"]
    lines = ["", "## Primary outcome: net agreement, SPADE - dense", ""]
    if t.get("estimate") is None or t.get("ci_low") is None:
        lines.append(f"Not tested: {t.get('reason') or 'no primary test'}.")
    else:
        lines.append(f"SPADE - dense = **{pct(t['estimate'])} points**, 95% interval [{pct(t['ci_low'])}, "
                     f"{pct(t['ci_high'])}], two-sided p {_p_phrase(t['p_value'])} ({t['method']}; "
                     f"{t['n_permutations']} permutations over {t['strata']} strata, "
                     f"{t['strata_with_both']} rated in both conditions).")
    lines += ["", "### Replication verdict", "", to_markdown(verdict_table(summary)[1]), "",
              f"Criterion (stated before the data): {summary['verdict']['net']['criterion']}. The original's interval "
              "comes from its published counts as if ratings were independent, so it is too narrow; d33 is computed "
              "from the same counts. The decision rate is a secondary outcome: its verdict is descriptive."]
    return lines


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b
