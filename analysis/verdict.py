"""The replication verdict: the measured SPADE - dense effect beside the paper's, and a stated criterion.

Effects (SPADE - dense, differences of fractions) on the two outcomes the paper reports:
net agreement (the primary outcome) and the decision rate (secondary).

- The original's interval comes from its published counts (`analysis.paper.COUNTS`: dense
  358 ratings / 276 decided / 203 agree, SPADE 388 / 339 / 271): a Newcombe interval, the only
  one its counts allow. It treats the 746 ratings as independent, so it is too narrow (the
  ratings were clustered in raters and tasks, as ours are); the verdict says so.
- The replication's interval is the primary test's (`analysis.permutation.primary_test`,
  inverted permutation test over whole tasks), which respects the clustering.
- Criterion, fixed before the data (and quoted by the pre-registration, `analysis.plan`):
  the effect REPLICATES when the replication's interval excludes 0 on the original's side AND
  the two estimates are compatible, i.e. the z-test of their difference
  (SE from both intervals, as a normal approximation) does not reject at alpha = 0.05.
  Excludes 0 but incompatible: "replicates, with a different size"; interval includes 0:
  "not replicated", and then the small-telescopes check (Simonsohn 2015) tells whether the
  replication is informative: d33 is the effect the original study had 33% power to detect
  (two-sided alpha 0.05: d33 = SE_original * (z_0.975 + z_0.33)); if the replication's
  one-sided 95% upper bound lies below d33, the effect is too small for the original to have
  seen it ("informative failure"); otherwise the replication is inconclusive.

Written by hand: the formulas are a few lines and no library packages the small-telescopes test.
"""
from __future__ import annotations

from scipy.stats import norm
from statsmodels.stats.proportion import confint_proportions_2indep

from analysis.paper import COUNTS

ALPHA = 0.05
Z = float(norm.ppf(1 - ALPHA / 2))
# z such that a two-sided 5% z-test has 33% power: Phi(d/se - z_0.975) = 0.33.
Z33 = Z + float(norm.ppf(0.33))
# outcome -> (label, numerator count in COUNTS, denominator count)
OUTCOMES: dict[str, tuple[str, str, str]] = {
    "net": ("net agreement (primary)", "correct", "n"),
    "decided": ("decision rate (secondary)", "decided", "n"),
}
CRITERION = ("replicated: the replication's 95% interval of SPADE - dense excludes 0 on the original's side and "
             "the replication and the original are compatible (z-test of their difference, two-sided 5%); "
             "small telescopes: an interval that includes 0 is an informative failure when its one-sided 95% "
             "upper bound lies below d33, the effect the original had 33% power to detect")


def original_effect(outcome: str) -> dict[str, float]:
    """The paper's SPADE - dense on `outcome` from its published counts, with a Newcombe 95% interval and SE."""
    _, num, den = OUTCOMES[outcome]
    k1, n1 = COUNTS["spade"][num], COUNTS["spade"][den]
    k2, n2 = COUNTS["dense"][num], COUNTS["dense"][den]
    p1, p2 = k1 / n1, k2 / n2
    lo, hi = confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff", alpha=ALPHA)
    se = (p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2) ** 0.5  # unpooled Wald SE: the one d33 is defined with
    return {"estimate": p1 - p2, "ci": [float(lo), float(hi)], "se": se, "d33": Z33 * se,
            "method": "Newcombe interval from the published counts (ratings treated as independent: too narrow)"}


def verdict(test: dict | None, outcome: str = "net") -> dict[str, object]:
    """The verdict on `outcome` from a `primary_test` result (None or untested: no verdict)."""
    orig = original_effect(outcome)
    out: dict[str, object] = {"outcome": outcome, "label": OUTCOMES[outcome][0], "original": orig,
                              "replication": None, "verdict": "not tested", "excludes_zero": None,
                              "compatible": None, "compatibility_p": None, "small_telescopes": None,
                              "criterion": CRITERION}
    if not test or test.get("estimate") is None or test.get("ci_low") is None:
        out["reason"] = (test or {}).get("reason") or "no primary test"
        return out
    est, lo, hi = float(test["estimate"]), float(test["ci_low"]), float(test["ci_high"])
    se = (hi - lo) / (2 * Z)  # the inverted interval read as a normal one: good enough for the comparison
    out["replication"] = {"estimate": est, "ci": [lo, hi], "se": se, "p": test.get("p_value"),
                          "method": test.get("method")}
    sign = 1.0 if orig["estimate"] >= 0 else -1.0
    excludes = (lo > 0) if sign > 0 else (hi < 0)
    z = (est - orig["estimate"]) / (se ** 2 + orig["se"] ** 2) ** 0.5 if se > 0 else float("inf")
    p = float(2 * norm.sf(abs(z)))
    compatible = p >= ALPHA
    upper = sign * est + float(norm.ppf(0.95)) * se  # one-sided 95% bound, on the original's side
    informative = upper < orig["d33"]
    out.update(excludes_zero=bool(excludes), compatible=bool(compatible), compatibility_z=float(z),
               compatibility_p=p,
               small_telescopes={"d33": orig["d33"], "upper_one_sided_95": sign * upper,
                                 "effect_smaller_than_d33": bool(informative)})
    if excludes:
        out["verdict"] = "replicated" if compatible else "replicated, with a different size"
    else:
        out["verdict"] = ("not replicated (informative failure: smaller than d33)" if informative
                          else "inconclusive (interval includes 0 and d33)")
    return out


def verdicts(tests: dict[str, dict] | None) -> dict[str, dict[str, object]]:
    """`verdict` for each outcome of `OUTCOMES`, from `analysis.permutation.primary_tests`."""
    return {o: verdict((tests or {}).get(o), o) for o in OUTCOMES}
