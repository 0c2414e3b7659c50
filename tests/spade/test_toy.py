"""The paper's toy experiment (Figure 3): SPADE on a sample of the small mode moves the visualization there."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import spade


LARGE = (torch.tensor([-0.45, -0.1]), 0.4)
SMALL = (torch.tensor([0.55, 0.45]), 0.15)
# small enough for a few seconds per seed on a CPU, large enough for ~99% test accuracy
N_PLANE, N_SMALL, TRAIN_STEPS, STARTS, ASCENT_STEPS = 800, 100, 300, 16, 100


def _positive(x: torch.Tensor) -> torch.Tensor:
    return ((x - LARGE[0]).norm(dim=1) < LARGE[1]) | ((x - SMALL[0]).norm(dim=1) < SMALL[1])


def _in_disc(center: torch.Tensor, radius: float, n: int, g: torch.Generator) -> torch.Tensor:
    angle = torch.rand(n, generator=g) * 2 * math.pi
    r = radius * torch.rand(n, generator=g).sqrt()
    return center + torch.stack([r * angle.cos(), r * angle.sin()], 1)


def _which_disc(p: torch.Tensor) -> str:
    if (p - LARGE[0]).norm() < LARGE[1]:
        return "large"
    if (p - SMALL[0]).norm() < SMALL[1]:
        return "small"
    return "neither"


def _visualize(model: nn.Module, g: torch.Generator) -> torch.Tensor:
    """Feature visualization of the output neuron: gradient ascent on the input (in the data box),
    from random starts; the point of highest activation."""
    x = (torch.rand(STARTS, 2, generator=g) * 2 - 1).requires_grad_()
    opt = torch.optim.Adam([x], lr=0.03)
    for _ in range(ASCENT_STEPS):
        opt.zero_grad()
        (-model(x).sum()).backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(-1, 1)
    with torch.no_grad():
        return x[model(x)[:, 0].argmax()].detach()


def _one_seed(seed: int) -> tuple[float, str, str]:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    # the plane [-1, 1]^2, labelled 1 inside either disc; the small disc oversampled so that it is learned
    X = torch.cat([torch.rand(N_PLANE, 2, generator=g) * 2 - 1, _in_disc(*SMALL, N_SMALL, g)])
    y = _positive(X).float()
    model = nn.Sequential(nn.Linear(2, 1000), nn.ReLU(), nn.Linear(1000, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(TRAIN_STEPS):
        opt.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(model(X)[:, 0], y).backward()
        opt.step()
    test = torch.rand(4000, 2, generator=g) * 2 - 1
    with torch.no_grad():
        accuracy = float(((model(test)[:, 0] > 0) == _positive(test)).float().mean())
    dense = _which_disc(_visualize(model, g))
    # SPADE on a sample from the small disc; its "augmentations": 255 noisy copies of the point
    sample = _in_disc(SMALL[0], SMALL[1] / 2, 1, g)
    inputs = torch.cat([sample, sample + 0.15 * torch.randn(255, 2, generator=g)])
    trace = spade.prune_inputs(model, inputs, sparsity={"2": 0.99}, solver="obc")
    return accuracy, dense, _which_disc(_visualize(trace.apply(model), g))


@pytest.mark.slow
def test_figure3_spade_visualizes_the_small_mode_of_its_sample() -> None:
    results = [_one_seed(seed) for seed in range(10)]
    assert min(acc for acc, _, _ in results) > 0.97, results
    assert sum(dense == "large" for _, dense, _ in results) >= 8, results
    assert sum(spade_ == "small" for _, _, spade_ in results) >= 8, results
