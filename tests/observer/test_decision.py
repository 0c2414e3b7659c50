"""The decision rule and the flags on hand-made similarities."""
from __future__ import annotations

import pytest

from observer.decision import decide, flag


@pytest.mark.parametrize("sim_target, sim_other, margin, choice", [
    (0.40, 0.30, 0.02, "target"),
    (0.30, 0.40, 0.02, "other"),
    (0.31, 0.30, 0.02, "undecided"),   # inside the band
    (0.30, 0.31, 0.02, "undecided"),
    (0.32, 0.30, 0.02, "target"),      # the band's edge decides (|score| < margin is undecided)
    (0.30, 0.30, 0.0, "other"),        # no band: a tie is not "target"
])
def test_decide(sim_target: float, sim_other: float, margin: float, choice: str) -> None:
    d = decide(sim_target, sim_other, margin)
    assert d.choice == choice
    assert d.score == pytest.approx(sim_target - sim_other)


def test_a_negative_margin_is_refused() -> None:
    with pytest.raises(ValueError, match="margin"):
        decide(0.4, 0.3, -0.1)


def test_flags() -> None:
    assert flag(0.2, 0.5, easy_gap=0.1, same_regions=0.9) == "easy"
    assert flag(0.05, 0.5, easy_gap=0.1, same_regions=0.9) == ""
    assert flag(-0.3, 0.5, easy_gap=0.1, same_regions=0.9) == ""
    # Regions alike beat a wide gap: no visualization can point to one of two look-alike regions.
    assert flag(0.2, 0.95, easy_gap=0.1, same_regions=0.9) == "impossible"
