"""Layer-wise sparsity solvers: name -> solver, and what every solver returns."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch


@dataclass
class SolveResult:
    """A pruned weight (groups x rows x cols), its keep-mask, the damping used and the relative error."""

    weight: torch.Tensor
    mask: torch.Tensor
    damping: float | None
    rel_error: float


class Solver(Protocol):
    def __call__(self, W: torch.Tensor, H: torch.Tensor, sparsity: float, *, damping: float | None = ...) -> SolveResult: ...


def relative_error(W: torch.Tensor, W_new: torch.Tensor, H: torch.Tensor) -> float:
    """||(W' - W) X||^2 / ||W X||^2, computed from H = X X^T / n (groups x d x d)."""
    W, W_new = _as_groups(W).to(H.dtype), _as_groups(W_new).to(H.dtype)
    delta = W_new - W
    num = (torch.bmm(delta, H) * delta).sum()
    den = (torch.bmm(W, H) * W).sum()
    if float(den) <= 0:
        return 0.0 if float(num) <= 0 else float("inf")
    return float(num / den)


def prune_counts(groups: int, rows: int, cols: int, sparsity: float) -> torch.Tensor:
    """Weights to remove from each group (a LongTensor): together exactly round(sparsity * numel).

    Rounding per group would drift by up to half a weight per group (half a column for a
    depthwise convolution); cumulative rounding spreads the remainder over the groups instead.
    """
    per_group = rows * cols
    edges = torch.tensor([round(sparsity * per_group * i) for i in range(groups + 1)], dtype=torch.long)
    return edges[1:] - edges[:-1]


def counts_with_dead(rows: int, cols: int, sparsity: float, dead: torch.Tensor) -> torch.Tensor:
    """Weights to remove per group when the weights on dead inputs (`dead`: groups x cols) must all go.

    They count towards the target; only when there are more of them than the target asks for
    does a group end sparser than its target.
    """
    counts = prune_counts(dead.shape[0], rows, cols, sparsity)
    return torch.maximum(counts, rows * dead.sum(1).cpu())


def smallest(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the `counts[g]` smallest entries of each row g of `scores` (groups x n)."""
    counts = counts.to(scores.device)
    mask = torch.zeros_like(scores, dtype=torch.bool)
    k_max = int(counts.max()) if counts.numel() else 0
    if k_max == 0:
        return mask
    idx = torch.topk(scores, k_max, dim=1, largest=False, sorted=True).indices
    take = torch.arange(k_max, device=scores.device)[None, :] < counts[:, None]
    return mask.scatter_(1, idx, take)


def _as_groups(t: torch.Tensor) -> torch.Tensor:
    return t[None] if t.dim() == 2 else t


def trivial(W: torch.Tensor, H: torch.Tensor, sparsity: float) -> SolveResult | None:
    """The result for target 0 (untouched) or 1 (emptied), else None."""
    W3 = _as_groups(W)
    if sparsity <= 0:
        return SolveResult(W3.clone(), torch.ones_like(W3, dtype=torch.bool), None, 0.0)
    if sparsity >= 1:
        empty = torch.zeros_like(W3)
        return SolveResult(empty, torch.zeros_like(W3, dtype=torch.bool), None, relative_error(W3, empty, _as_groups(H)))
    return None


def get_solver(name: str) -> Callable[..., SolveResult]:
    """Return the solver registered under `name` (sparsegpt, obc, magnitude)."""
    from . import magnitude, obc, sparsegpt  # local: keep `import spade.solvers` cheap

    registry = {"sparsegpt": sparsegpt.solve, "obc": obc.solve, "magnitude": magnitude.solve}
    if name not in registry:
        raise ValueError(f"unknown solver {name!r} (choose from {', '.join(sorted(registry))})")
    return registry[name]


SOLVERS = ("sparsegpt", "obc", "magnitude")


def check_options(solver: str, block_size: int | str | None) -> None:
    """Raise ValueError for a block size given to a solver without blocks (only sparsegpt has them)."""
    if block_size is not None and solver != "sparsegpt":
        raise ValueError(f"block_size applies to the sparsegpt solver only, not to {solver!r}")
    if block_size is not None:
        from .sparsegpt import block_size_for

        block_size_for(None, block_size)  # validates the value


def layer_options(solver: str, module: object, damping: float | None, block_size: int | str | None) -> dict:
    """Keyword arguments of `solver` for one layer: the damping, and sparsegpt's block size for that layer."""
    options: dict = {"damping": damping}
    if solver == "sparsegpt":
        from .sparsegpt import block_size_for

        options["block_size"] = block_size_for(module, block_size)
    return options
