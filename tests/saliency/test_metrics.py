"""The metrics on hand-made cases with known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from saliency.metrics import deletion_auc, insertion_auc, pointing_game, trojan_auroc
from saliency.tables import bootstrap_ci


def _mask() -> np.ndarray:
    m = np.zeros((8, 8), dtype=bool)
    m[2:4, 5:8] = True
    return m


def test_auroc_perfect_inverted_constant() -> None:
    mask = _mask()
    assert trojan_auroc(mask.astype(float), mask) == 1.0
    assert trojan_auroc(1.0 - mask, mask) == 0.0
    assert trojan_auroc(np.full(mask.shape, 3.0), mask) == 0.5


def test_auroc_is_rank_based_and_partial() -> None:
    mask = _mask()
    graded = np.where(mask, 10.0, 0.0)
    graded[0, 0] = 20.0  # one outside pixel ranked above all 6 patch pixels: AUROC = 1 - 1/58
    assert trojan_auroc(graded, mask) == pytest.approx(1 - 1 / 58)
    assert trojan_auroc(np.exp(graded / 10), mask) == trojan_auroc(graded, mask)


def test_auroc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="inside and outside"):
        trojan_auroc(np.ones((4, 4)), np.ones((4, 4), dtype=bool))


def test_pointing_game_hits_and_misses() -> None:
    mask = _mask()
    hit = np.zeros((8, 8))
    hit[3, 6] = 1.0
    miss = np.zeros((8, 8))
    miss[6, 1] = 1.0
    near = np.zeros((8, 8))
    near[5, 6] = 1.0  # two rows below the patch
    assert pointing_game(hit, mask)
    assert not pointing_game(miss, mask)
    assert not pointing_game(near, mask)
    assert pointing_game(near, mask, tolerance=2)
    assert not pointing_game(near, mask, tolerance=1)


class _Weighted(torch.nn.Module):
    """Score = sum of pixel * weight: the ideal order is by weight, so the curves are known."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * self.w).flatten(1).sum(1, keepdim=True)
        return torch.cat([s, torch.zeros_like(s)], 1)


def test_insertion_and_deletion_on_a_toy_model() -> None:
    w = torch.tensor([0.7, 0.2, 0.1, 0.0]).reshape(1, 1, 2, 2)
    model, x = _Weighted(w), torch.ones(1, 1, 2, 2)
    best = w[0, 0].numpy()
    kw = dict(steps=4, softmax=False)
    # best order: insertion curve 0, .7, .9, 1, 1 -> trapezoid .775; deletion 1, .3, .1, 0, 0 -> .225
    assert insertion_auc(model, x, best, 0, **kw) == pytest.approx(0.775)
    assert deletion_auc(model, x, best, 0, **kw) == pytest.approx(0.225)
    # the reversed order is the worst: the two swap
    assert insertion_auc(model, x, -best, 0, **kw) == pytest.approx(0.225)
    assert deletion_auc(model, x, -best, 0, **kw) == pytest.approx(0.775)
    # batching does not change the curve
    assert insertion_auc(model, x, best, 0, steps=4, softmax=False, batch_size=2) == pytest.approx(0.775)


def test_bootstrap_interval_contains_the_mean() -> None:
    diffs = np.random.default_rng(0).normal(2.0, 1.0, 30)
    lo, hi = bootstrap_ci(diffs, 500)
    assert lo < diffs.mean() < hi
    assert bootstrap_ci(np.array([1.0, 1.0, 1.0])) == (1.0, 1.0)
