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
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[:, i1:i2, i1:i2]
        d = Hinv1.diagonal(dim1=-2, dim2=-1)  # g x count
        # adaptive mask selection: the k lowest OBS scores of the whole block, across rows
        prune1 = smallest((W1 ** 2 / d[:, None, :] ** 2).reshape(g, -1), k).reshape(W1.shape)
        scale = prune1.to(dtype) / d[:, None, :]  # err = w / [H^-1]_ii on pruned weights, 0 elsewhere
        for i in range(count):
            err = torch.mul(W1[:, :, i], scale[:, :, i], out=Err1[:, :, i])
            # OBS update of the block's remaining columns, in place (a rank-1 update per group);
            # column i itself becomes exactly w - err * [H^-1]_ii: 0 where pruned, w where kept
            W1[:, :, i:].baddbmm_(err[:, :, None], Hinv1[:, i:i + 1, i:], alpha=-1.0)
        keep1 = ~prune1
        Wk[:, :, i1:i2] = W1 * keep1
        mask[:, :, i1:i2] = keep1
        if i2 < c:
            Wk[:, :, i2:] -= torch.bmm(Err1, Hinv[:, i1:i2, i2:])
    Wk = Wk.to(W3.dtype) * mask
    return SolveResult(Wk, mask, used, relative_error(W3, Wk, H3))
