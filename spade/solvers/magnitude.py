"""Magnitude pruning: the baseline without compensation (smallest |w| of each layer removed)."""
from __future__ import annotations

import torch

from . import SolveResult, _as_groups, prune_counts, relative_error, smallest, trivial


def solve(W: torch.Tensor, H: torch.Tensor, sparsity: float, *, damping: float | None = None) -> SolveResult:
    """Zero the smallest-magnitude weights of each group; `damping` is ignored (nothing is inverted)."""
    W3, H3 = _as_groups(W), _as_groups(H)
    done = trivial(W3, H3, sparsity)
    if done is not None:
        return done
    g, r, c = W3.shape
    keep = ~smallest(W3.abs().reshape(g, -1), prune_counts(g, r, c, sparsity)).reshape(g, r, c)
    W_new = W3 * keep
    return SolveResult(W_new, keep, None, relative_error(W3, W_new, H3))
