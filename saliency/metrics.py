"""Scores of a saliency map: Trojan AUROC and pointing game (against the patch mask), insertion and
deletion AUC (against the dense model's confidence).

AUROC is scikit-learn's. Insertion/deletion are written here (about 30 lines) rather than taken from
Quantus: Quantus' pixel-flipping runs one forward pass per step and sample, these evaluate every step
of a curve in batched forward passes; bench/README.md compares the two.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from sklearn.metrics import roc_auc_score


def trojan_auroc(saliency: np.ndarray, mask: np.ndarray) -> float:
    """AUROC of the map's values as a score for 'pixel is in the patch' (1 perfect, 0.5 chance, 0 inverted)."""
    mask = np.asarray(mask, dtype=bool).ravel()
    if mask.all() or not mask.any():
        raise ValueError("the mask must have pixels inside and outside the patch")
    return float(roc_auc_score(mask, np.asarray(saliency, dtype=np.float64).ravel()))


def pointing_game(saliency: np.ndarray, mask: np.ndarray, tolerance: int = 0) -> bool:
    """Hit when the map's maximum (first one, row-major) lies in the mask grown by `tolerance` pixels."""
    saliency = np.asarray(saliency)
    r, c = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    mask = np.asarray(mask, dtype=bool)
    r0, r1 = max(0, r - tolerance), r + tolerance + 1
    c0, c1 = max(0, c - tolerance), c + tolerance + 1
    return bool(mask[r0:r1, c0:c1].any())


def _curve(model: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, end: torch.Tensor,
           saliency: np.ndarray, target: int, steps: int, batch_size: int, softmax: bool) -> np.ndarray:
    """Score of `target` while the pixels go from `start` to `end`, most salient first, in `steps` equal steps."""
    h, w = saliency.shape
    order = torch.from_numpy(np.argsort(-np.asarray(saliency, dtype=np.float64).ravel(), kind="stable").copy())
    counts = np.linspace(0, h * w, steps + 1).round().astype(int)
    rank = torch.empty(h * w, dtype=torch.long)
    rank[order] = torch.arange(h * w)
    rank = rank.reshape(1, 1, h, w).to(start.device)
    scores = []
    with torch.no_grad():
        for b in range(0, len(counts), batch_size):
            ks = torch.tensor(counts[b:b + batch_size], device=start.device).reshape(-1, 1, 1, 1)
            replaced = rank < ks                       # the k most salient pixels come from `end`
            batch = torch.where(replaced, end, start)
            out = model(batch)
            out = out.softmax(1) if softmax else out
            scores.append(out[:, target].float().cpu())
    return torch.cat(scores).numpy()


def _auc(curve: np.ndarray) -> float:
    return float(np.trapezoid(curve, dx=1.0 / (len(curve) - 1)))


def insertion_auc(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, saliency: np.ndarray, target: int,
                  *, baseline: torch.Tensor | None = None, steps: int = 16, batch_size: int = 32,
                  softmax: bool = True) -> float:
    """Area under the target's confidence as pixels of `x` are inserted into the blank `baseline`, most salient
    first, normalized by the confidence on the full image (higher is better)."""
    base = torch.zeros_like(x) if baseline is None else baseline
    curve = _curve(model, base, x, saliency, target, steps, batch_size, softmax)
    return _auc(curve) / max(float(curve[-1]), 1e-12)


def deletion_auc(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, saliency: np.ndarray, target: int,
                 *, baseline: torch.Tensor | None = None, steps: int = 16, batch_size: int = 32,
                 softmax: bool = True) -> float:
    """Area under the target's confidence as pixels of `x` are replaced by `baseline`, most salient first,
    normalized by the confidence on the full image (lower is better)."""
    base = torch.zeros_like(x) if baseline is None else baseline
    curve = _curve(model, x, base, saliency, target, steps, batch_size, softmax)
    return _auc(curve) / max(float(curve[0]), 1e-12)
