"""Relative damping of a Hessian, raised step by step until its Cholesky factorization succeeds."""
from __future__ import annotations

import torch

DEFAULT_DAMPING = 0.01
# Each retry multiplies the relative damping by this factor, up to MAX_RETRIES times.
GROWTH = 10.0
MAX_RETRIES = 6


class DampingError(RuntimeError):
    """The Hessian stayed non positive-definite even with the largest damping tried."""


def prepare_hessian(H: torch.Tensor) -> torch.Tensor:
    """Copy of H (groups x d x d) with dead inputs (zero diagonal) given a unit diagonal, as in SparseGPT."""
    H = H.clone()
    diag = H.diagonal(dim1=-2, dim2=-1)
    dead = diag == 0
    diag[dead] = 1.0
    return H


def damped_cholesky(H: torch.Tensor, damping: float = DEFAULT_DAMPING) -> tuple[torch.Tensor, float]:
    """Lower Cholesky factor of H + damping * mean(diag H) * I (per group); returns it and the damping used.

    When the factorization fails, the relative damping is multiplied by GROWTH and tried again;
    the value that worked is returned so that it can be recorded. No silent fallback.
    """
    diag_mean = H.diagonal(dim1=-2, dim2=-1).mean(-1)  # one value per group
    eye = torch.eye(H.shape[-1], dtype=H.dtype, device=H.device)
    current = float(damping)
    for _ in range(MAX_RETRIES + 1):
        damped = H + (current * diag_mean)[:, None, None] * eye
        L, info = torch.linalg.cholesky_ex(damped)
        if not bool((info != 0).any()):
            return L, current
        current *= GROWTH
    raise DampingError(f"Hessian not positive definite even with relative damping {current / GROWTH:g}")


def inverse_hessian(H: torch.Tensor, damping: float = DEFAULT_DAMPING) -> tuple[torch.Tensor, float]:
    """Inverse of the damped Hessian (per group) and the damping used."""
    L, used = damped_cholesky(H, damping)
    return torch.cholesky_inverse(L), used


def upper_cholesky_of_inverse(H: torch.Tensor, damping: float = DEFAULT_DAMPING) -> tuple[torch.Tensor, float]:
    """Upper Cholesky factor of the inverse damped Hessian (SparseGPT's Hinv) and the damping used."""
    Hinv, used = inverse_hessian(H, damping)
    U, info = torch.linalg.cholesky_ex(Hinv, upper=True)
    if bool((info != 0).any()):
        # The inverse of a positive-definite matrix is positive definite; failing here means the
        # damping was too small for float precision: retry from the next damping step.
        return upper_cholesky_of_inverse(H, used * GROWTH)
    return U, used
