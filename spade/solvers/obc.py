"""Exact greedy OBS per row (Frantar & Alistarh, 2022, "Optimal Brain Compression"): the paper's SPADE solver.

For every row, weights are removed one at a time, always the one whose removal raises the
layer error least (w_j^2 / [H^-1]_jj), with the exact OBS update of the remaining weights and
of H^-1. As in the OBC implementation, all rows of a layer run in parallel as one batched
tensor operation (chunked over rows to bound memory), the per-step losses of all rows decide
how many weights each row loses (the layer's target is met globally), and the final weights
are the exact least-squares reconstruction for the chosen mask.
"""
from __future__ import annotations

import torch

from . import SolveResult, _as_groups, counts_with_dead, relative_error, smallest, trivial
from .damping import DEFAULT_DAMPING, dead_inputs, inverse_hessian, prepare_hessian

# Bytes of row-wise d x d matrices held at once (one H^-1 copy per row in a chunk) on CPU; on a
# GPU a quarter of the free device memory (`chunk_budget`), so that a large card runs more rows per step.
DEFAULT_CHUNK_BYTES = 1 << 30


def chunk_budget(device: torch.device) -> int:
    """Bytes of row-wise matrices one OBC step may hold on `device` (CUDA: a quarter of its free memory)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(DEFAULT_CHUNK_BYTES, int(free) // 4)
    return DEFAULT_CHUNK_BYTES


def greedy_path(W: torch.Tensor, Hinv: torch.Tensor,
                first: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run greedy OBS removal to the end on rows W (R x d) with per-row inverse Hessians Hinv (R x d x d).

    Returns (losses, order): the error increase of each step and the column removed at each step.
    Columns in `first` (R x d bool: dead inputs, whose weights are 0) are removed before all others,
    with loss -1. W and Hinv are modified in place.
    """
    R, d = W.shape
    ar = torch.arange(R, device=W.device)
    removed = torch.zeros(R, d, dtype=torch.bool, device=W.device)
    losses = torch.empty(R, d, dtype=W.dtype, device=W.device)
    order = torch.empty(R, d, dtype=torch.long, device=W.device)
    tiny = torch.finfo(W.dtype).tiny
    for t in range(d):
        diag = Hinv.diagonal(dim1=1, dim2=2).clamp_min(tiny)  # rounding can push it to <= 0 late in the path
        score = (W * W / diag).masked_fill_(removed, float("inf"))
        if first is not None:
            score.masked_fill_(first & ~removed, -1.0)
        j = score.argmin(1)
        losses[:, t] = score[ar, j]
        order[:, t] = j
        hj = Hinv[ar, :, j]                      # R x d, column j (H^-1 is symmetric)
        dj = hj[ar, j].clamp_min(tiny)
        W.sub_(hj * (W[ar, j] / dj)[:, None])
        Hinv.baddbmm_(hj[:, :, None], (hj / dj[:, None])[:, None, :], alpha=-1.0)
        removed[ar, j] = True
        W[ar, j] = 0.0
    return losses, order


def reconstruct(W: torch.Tensor, keep: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """Optimal weights of rows W (R x d) restricted to `keep` under the quadratic error of H (R x d x d).

    w'_S = H_SS^-1 (H w)_S, solved as one batched system by putting identity rows/cols on the pruned set.
    """
    both = keep[:, :, None] & keep[:, None, :]
    M = torch.where(both, H, torch.zeros((), dtype=H.dtype, device=H.device))
    M.diagonal(dim1=1, dim2=2).add_((~keep).to(H.dtype))
    rhs = torch.bmm(H, W[:, :, None]).squeeze(2) * keep
    L = torch.linalg.cholesky(M)
    return torch.cholesky_solve(rhs[:, :, None], L).squeeze(2) * keep


def solve(W: torch.Tensor, H: torch.Tensor, sparsity: float, *, damping: float | None = DEFAULT_DAMPING,
          chunk_bytes: int | None = None) -> SolveResult:
    """Prune `sparsity` of each group of W (groups x rows x cols) given H (groups x cols x cols).

    `damping=None` (or 0): no damping unless the Cholesky factorization fails, as in the reference
    OBC. Weights on dead inputs (zero diagonal of H) are zeroed and pruned first, as in the reference.
    """
    W3, H3 = _as_groups(W), _as_groups(H)
    done = trivial(W3, H3, sparsity)
    if done is not None:
        return done
    g, r, c = W3.shape
    dtype = H3.dtype
    Hp = prepare_hessian(H3)
    Hinv, used = inverse_hessian(Hp, damping)
    diag_mean = Hp.diagonal(dim1=-2, dim2=-1).mean(-1)
    Hd = Hp + (used * diag_mean)[:, None, None] * torch.eye(c, dtype=dtype, device=H3.device)
    dead = dead_inputs(H3)
    rows = W3.to(dtype).masked_fill(dead[:, None, :], 0.0).reshape(g * r, c)
    group_of_row = torch.arange(g, device=W3.device).repeat_interleave(r)
    dead_rows = dead[group_of_row] if bool(dead.any()) else None
    # per row in a chunk: H^-1 copy, then the masked system and its Cholesky factor
    budget = chunk_budget(rows.device) if chunk_bytes is None else chunk_bytes
    chunk = max(1, int(budget // (3 * c * c * rows.element_size())))
    losses = torch.empty(g * r, c, dtype=dtype, device=W3.device)
    order = torch.empty(g * r, c, dtype=torch.long, device=W3.device)
    for s in range(0, g * r, chunk):
        e = min(s + chunk, g * r)
        losses[s:e], order[s:e] = greedy_path(rows[s:e].clone(), Hinv[group_of_row[s:e]].clone(),
                                              None if dead_rows is None else dead_rows[s:e])
    # Allocation: the k smallest increments of each group, made monotone along each row's path so
    # that the selection is a prefix of every row's removal order. Dead inputs (loss -1, a prefix of
    # every row's order) are all chosen.
    inc = losses.reshape(g, r, c).cummax(-1).values.reshape(g, -1)
    chosen = smallest(inc, counts_with_dead(r, c, sparsity, dead))
    counts = chosen.reshape(g * r, c).sum(1)
    in_prefix = torch.arange(c, device=W3.device)[None, :] < counts[:, None]
    pruned = torch.zeros(g * r, c, dtype=torch.bool, device=W3.device).scatter_(1, order, in_prefix)
    keep = ~pruned
    new_rows = torch.empty_like(rows)
    for s in range(0, g * r, chunk):
        e = min(s + chunk, g * r)
        new_rows[s:e] = reconstruct(rows[s:e], keep[s:e], Hd[group_of_row[s:e]])
    W_new = new_rows.reshape(g, r, c).to(W3.dtype)
    keep = keep.reshape(g, r, c)
    return SolveResult(W_new, keep, used, relative_error(W3, W_new, H3))
