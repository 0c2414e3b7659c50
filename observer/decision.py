"""The observer's decision rule: the region whose crop the visualization resembles more, unless the gap is small.

Written by hand because it is two comparisons: the score is the gap of two cosine similarities,
and a band of half-width `margin` around zero is "can't decide". The same rule answers every
study task (`observer.runner`) and gives the simulated raters of `bench/` their indecision.
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MARGIN = 0.02
DEFAULT_EASY_GAP = 0.10
DEFAULT_SAME_REGIONS = 0.90


@dataclass(frozen=True)
class Decision:
    """One answer: `target`, `other` or `undecided`, and the score it came from."""

    choice: str
    score: float


def decide(sim_target: float, sim_other: float, margin: float = DEFAULT_MARGIN) -> Decision:
    """Pick the region the visualization is more similar to; `undecided` when the gap is under `margin`."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    score = sim_target - sim_other
    if abs(score) < margin:
        return Decision("undecided", score)
    return Decision("target" if score > 0 else "other", score)


def flag(score: float, sim_regions: float, easy_gap: float = DEFAULT_EASY_GAP,
         same_regions: float = DEFAULT_SAME_REGIONS) -> str:
    """`impossible` when the two region crops look alike to the network, `easy` when the gap is wide, else ''.

    Impossible is checked first: when the regions themselves cannot be told apart, no visualization
    can point to one of them, whatever its score.
    """
    if sim_regions >= same_regions:
        return "impossible"
    if score >= easy_gap:
        return "easy"
    return ""
