"""SparseGPT (Frantar & Alistarh, 2023): OBS updates column by column with the Cholesky factor of H^-1
and adaptive mask selection per block of columns (the paper's FastSPADE solver).

Written out here because the reference implementation is a script bound to LLM layers, not an
importable library; this version is batched over weight groups (depthwise/grouped convolutions).
"""
from __future__ import annotations

import torch

from . import SolveResult, _as_groups, prune_counts, relative_error, smallest, trivial
from .damping import DEFAULT_DAMPING, prepare_hessian, upper_cholesky_of_inverse

BLOCK_SIZE = 128


def solve(W: torch.Tensor, H: torch.Tensor, sparsity: float, *, damping: float = DEFAULT_DAMPING,
          block_size: int = BLOCK_SIZE) -> SolveResult:
    """Prune `sparsity` of each group of W (groups x rows x cols) given H (groups x cols x cols)."""
    W3, H3 = _as_groups(W), _as_groups(H)
    done = trivial(W3, H3, sparsity)
    if done is not None:
        return done
    g, r, c = W3.shape
    dtype = H3.dtype
    Hinv, used = upper_cholesky_of_inverse(prepare_hessian(H3), damping)
    Wk = W3.to(dtype).clone()
    mask = torch.ones_like(Wk, dtype=torch.bool)
    total = prune_counts(g, r, c, sparsity).double()  # per group
    pruned_so_far = torch.zeros(g, dtype=torch.long)
    for i1 in range(0, c, block_size):
        i2 = min(i1 + block_size, c)
        count = i2 - i1
        # exact cumulative counts: the layer ends with exactly `total` zeros per group
        k = torch.round(total * i2 / c).long() - pruned_so_far
        pruned_so_far += k
        W1 = Wk[:, :, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[:, i1:i2, i1:i2]
        d = Hinv1.diagonal(dim1=-2, dim2=-1)  # g x count
        # adaptive mask selection: the k lowest OBS scores of the whole block, across rows
        mask1 = smallest((W1 ** 2 / d[:, None, :] ** 2).reshape(g, -1), k).reshape(W1.shape)  # True: prune
        for i in range(count):
            w = W1[:, :, i]
            q = w.masked_fill(mask1[:, :, i], 0.0)
            Q1[:, :, i] = q
            err = (w - q) / d[:, i, None]
            W1[:, :, i:] -= err[:, :, None] * Hinv1[:, None, i, i:]
            Err1[:, :, i] = err
        Wk[:, :, i1:i2] = Q1
        mask[:, :, i1:i2] = ~mask1
        if i2 < c:
            Wk[:, :, i2:] -= torch.bmm(Err1, Hinv[:, i1:i2, i2:])
    Wk = Wk.to(W3.dtype) * mask
    return SolveResult(Wk, mask, used, relative_error(W3, Wk, H3))
