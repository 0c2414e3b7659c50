"""The replication verdict: the original's interval from its counts, d33, and each branch of the criterion."""
from __future__ import annotations

import math

import pytest

from analysis.verdict import Z33, original_effect, verdict


def test_original_effect_from_the_published_counts():
    net = original_effect("net")
    assert net["estimate"] == pytest.approx(271 / 388 - 203 / 358)
    assert [round(100 * x, 1) for x in net["ci"]] == [6.2, 19.9]  # Newcombe, as the issue quotes it
    se = math.sqrt((271 / 388) * (117 / 388) / 388 + (203 / 358) * (155 / 358) / 358)
    assert net["se"] == pytest.approx(se)
    # d33: the effect a two-sided 5% z-test detects with probability 1/3 (Simonsohn's small telescopes)
    assert net["d33"] == pytest.approx(se * (1.959964 - 0.439913), rel=1e-4) and Z33 == pytest.approx(1.52005, abs=1e-4)
    decided = original_effect("decided")
    assert decided["estimate"] == pytest.approx(339 / 388 - 276 / 358)


def primary(estimate: float, lo: float, hi: float, p: float = 0.01) -> dict:
    return {"estimate": estimate, "ci_low": lo, "ci_high": hi, "p_value": p, "method": "permutation"}


@pytest.mark.parametrize("case,expected", [
    (primary(0.13, 0.05, 0.21), "replicated"),                               # the paper's effect again
    (primary(0.40, 0.33, 0.47), "replicated, with a different size"),        # real, but far larger
    (primary(0.00, -0.03, 0.03, 0.9), "not replicated (informative failure: smaller than d33)"),
    (primary(0.05, -0.10, 0.20, 0.5), "inconclusive (interval includes 0 and d33)"),
])
def test_each_branch_of_the_criterion(case, expected):
    v = verdict(case, "net")
    assert v["verdict"] == expected
    assert v["excludes_zero"] == (case["ci_low"] > 0)
    assert "33% power" in v["criterion"]


def test_no_test_no_verdict():
    v = verdict({"estimate": None, "ci_low": None, "reason": "only one condition present"}, "net")
    assert v["verdict"] == "not tested" and v["reason"] == "only one condition present"
    assert verdict(None, "decided")["verdict"] == "not tested"
