"""Magnitude pruning: the baseline without compensation (smallest |w| of each layer removed)."""
from __future__ import annotations

import torch

from . import SolveResult, _as_groups, counts_with_dead, relative_error, smallest, trivial
from .damping import dead_inputs


def solve(W: torch.Tensor, H: torch.Tensor, sparsity: float, *, damping: float | None = None) -> SolveResult:
    """Zero the smallest-magnitude weights of each group; `damping` is ignored (nothing is inverted).

    Weights on dead inputs (zero diagonal of H) go first, as in the compensating solvers.
    """
    W3, H3 = _as_groups(W), _as_groups(H)
    done = trivial(W3, H3, sparsity)
    if done is not None:
        return done
    g, r, c = W3.shape
    dead = dead_inputs(H3).to(W3.device)
    scores = W3.abs().masked_fill(dead[:, None, :], -1.0)  # |w| >= 0: dead inputs come first
    keep = ~smallest(scores.reshape(g, -1), counts_with_dead(r, c, sparsity, dead)).reshape(g, r, c)
    W_new = W3 * keep
    return SolveResult(W_new, keep, None, relative_error(W3, W_new, H3))
