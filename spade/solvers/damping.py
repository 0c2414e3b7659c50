"""Relative damping of a Hessian, raised step by step until its Cholesky factorization succeeds.

Dead inputs (a zero diagonal entry of H: an input that is 0 on every sample) are handled as in
the references (SparseGPT, OBC): H gets a unit diagonal there, and the weights on them are zeroed
and pruned first by every solver (`dead_inputs`).
"""
from __future__ import annotations

import torch

DEFAULT_DAMPING = 0.01
# `damping=None` (or 0): no damping unless the Cholesky factorization fails, as in the reference OBC
# (trueobs.py); on failure the retries start from this relative damping.
FIRST_RETRY = DEFAULT_DAMPING
# Each retry multiplies the relative damping by this factor, up to MAX_RETRIES times.
GROWTH = 10.0
MAX_RETRIES = 6


def parse_damping(value: float | str | None) -> float | None:
    """A damping option as the solvers take it: a relative damping >= 0, or None for "reference"/None."""
    if value is None or value == "reference":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"damping must be a number >= 0 or 'reference', got {value!r}")
    return float(value)


class DampingError(RuntimeError):
    """The Hessian stayed non positive-definite even with the largest damping tried."""


def dead_inputs(H: torch.Tensor) -> torch.Tensor:
    """Boolean groups x d: the inputs that are 0 on every sample (zero diagonal of H)."""
    return H.diagonal(dim1=-2, dim2=-1) == 0


def _next_damping(current: float) -> float:
    return current * GROWTH if current > 0 else FIRST_RETRY


def prepare_hessian(H: torch.Tensor) -> torch.Tensor:
    """Copy of H (groups x d x d) with dead inputs (zero diagonal) given a unit diagonal, as in SparseGPT."""
    H = H.clone()
    diag = H.diagonal(dim1=-2, dim2=-1)
    diag[diag == 0] = 1.0
    return H


def damped_cholesky(H: torch.Tensor, damping: float | None = DEFAULT_DAMPING) -> tuple[torch.Tensor, float]:
    """Lower Cholesky factor of H + damping * mean(diag H) * I (per group); returns it and the damping used.

    When the factorization fails, the relative damping is multiplied by GROWTH (from 0 or None:
    set to FIRST_RETRY) and tried again; the value that worked is returned so that it can be
    recorded. No silent fallback.
    """
    diag_mean = H.diagonal(dim1=-2, dim2=-1).mean(-1)  # one value per group
    eye = torch.eye(H.shape[-1], dtype=H.dtype, device=H.device)
    current = float(damping or 0.0)
    tried = current
    for _ in range(MAX_RETRIES + (2 if current == 0 else 1)):  # from 0: one more try (the undamped one)
        damped = H + (current * diag_mean)[:, None, None] * eye if current > 0 else H
        L, info = torch.linalg.cholesky_ex(damped)
        if not bool((info != 0).any()):
            return L, current
        tried, current = current, _next_damping(current)
    raise DampingError(f"Hessian not positive definite even with relative damping {tried:g}")


def inverse_hessian(H: torch.Tensor, damping: float | None = DEFAULT_DAMPING) -> tuple[torch.Tensor, float]:
    """Inverse of the damped Hessian (per group) and the damping used."""
    L, used = damped_cholesky(H, damping)
    return torch.cholesky_inverse(L), used


def upper_cholesky_of_inverse(H: torch.Tensor, damping: float | None = DEFAULT_DAMPING) -> tuple[torch.Tensor, float]:
    """Upper Cholesky factor of the inverse damped Hessian (SparseGPT's Hinv) and the damping used."""
    Hinv, used = inverse_hessian(H, damping)
    U, info = torch.linalg.cholesky_ex(Hinv, upper=True)
    if bool((info != 0).any()):
        # The inverse of a positive-definite matrix is positive definite; failing here means the
        # damping was too small for float precision: retry from the next damping step.
        return upper_cholesky_of_inverse(H, _next_damping(used))
    return U, used
