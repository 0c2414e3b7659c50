"""The layer-wise solvers against brute force, against each other on real inputs, and their contracts."""
from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spade.capture import capture_hessians, grouped_weight, weight_groups
from spade.augment import augmented_batches
from spade.solvers import SOLVERS, get_solver, relative_error
from spade.solvers.damping import DampingError, damped_cholesky
from spade.solvers.obc import greedy_path, reconstruct

from tests.spade.samples import lite0, sample_images


def _problem(seed: int, d: int = 8, n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """One row of d weights and a Hessian with correlated inputs (the interesting case for OBS)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(d, n, generator=g, dtype=torch.float64)
    X[1] = 0.8 * X[0] + 0.2 * X[1]
    X[5] = 0.6 * X[4] - 0.4 * X[2] + 0.1 * X[5]
    return torch.randn(1, d, generator=g, dtype=torch.float64), X @ X.T / n


def _best(w: torch.Tensor, H: torch.Tensor, k: int) -> float:
    """Exact optimum over all masks removing k weights, each with its least-squares reconstruction."""
    d = w.shape[1]
    best = float("inf")
    for removed in itertools.combinations(range(d), k):
        keep = torch.tensor([i not in removed for i in range(d)])
        best = min(best, relative_error(w, reconstruct(w, keep[None], H[None]), H[None]))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_obc_single_removal_is_the_exact_obs_optimum(seed: int) -> None:
    w, H = _problem(seed)
    result = get_solver("obc")(w, H, 1 / 8, damping=1e-12)
    assert int((~result.mask).sum()) == 1
    assert result.rel_error == pytest.approx(_best(w, H, 1), rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_no_solver_beats_brute_force_and_obc_is_closest(seed: int) -> None:
    w, H = _problem(seed)
    gaps = {name: 0.0 for name in SOLVERS}
    for k in range(1, 8):
        best = _best(w, H, k)
        for name in SOLVERS:
            err = get_solver(name)(w, H, k / 8, damping=1e-12).rel_error
            assert err >= best * (1 - 1e-6) - 1e-12, (name, k)
            gaps[name] += err - best
    assert gaps["obc"] <= min(gaps["sparsegpt"], gaps["magnitude"])


def test_greedy_path_weights_are_the_optimal_reconstruction_of_their_mask() -> None:
    w, H = _problem(7)
    Hinv = torch.linalg.inv(H)
    for steps in (2, 5):
        W, Hi = w.clone(), Hinv[None].clone()
        _, order = greedy_path(W, Hi)  # runs to the end; replay the first `steps` removals
        keep = torch.ones(1, 8, dtype=torch.bool)
        keep[0, order[0, :steps]] = False
        W2, Hi2 = w.clone(), Hinv[None].clone()
        for j in order[0, :steps].tolist():  # the OBS update, written out
            hj = Hi2[0, :, j].clone()
            W2 -= W2[0, j] / hj[j] * hj
            Hi2[0] -= torch.outer(hj, hj) / hj[j]
        assert torch.allclose(W2 * keep, reconstruct(w, keep, H[None]), atol=1e-9)


@pytest.fixture(scope="module")
def real_layers() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(W, H) of small EfficientNet-Lite0 layers, H from augmentations of two real images."""
    model, pp = lite0()
    names = ["_blocks.2._project_conv", "_blocks.3._expand_conv", "_blocks.3._depthwise_conv",
             "_blocks.4._depthwise_conv", "_blocks.5._project_conv"]
    modules = dict(model.named_modules())
    out = {}
    for i, path in enumerate(sample_images(2, step=97)):
        picture = pp.load(path)
        accs = capture_hessians(model, {n: modules[n] for n in names},
                                augmented_batches(picture, 24, 24, seed=i, preprocess=pp), torch.device("cpu"))
        for n in names:
            out[f"{path.stem}:{n}"] = (grouped_weight(modules[n].weight.detach(), weight_groups(modules[n])), accs[n].H)
    return out


@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_on_real_inputs_obc_beats_sparsegpt_beats_magnitude(real_layers, sparsity: float) -> None:
    errors = {name: [] for name in SOLVERS}
    for W, H in real_layers.values():
        for name in SOLVERS:
            errors[name].append(get_solver(name)(W, H, sparsity).rel_error)
    mean = {name: sum(v) / len(v) for name, v in errors.items()}
    assert mean["obc"] <= mean["sparsegpt"] < mean["magnitude"], mean
    assert mean["magnitude"] > 1.5 * mean["sparsegpt"], mean  # compensation matters, not a rounding tie


@settings(max_examples=40, deadline=None)
@given(groups=st.sampled_from([1, 3, 16]), rows=st.integers(1, 6), cols=st.integers(1, 40),
       sparsity=st.floats(0.0, 1.0), solver=st.sampled_from(SOLVERS), seed=st.integers(0, 2**16))
def test_achieved_sparsity_is_within_one_column_of_the_target(groups, rows, cols, sparsity, solver, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(groups, rows, cols, generator=g)
    X = torch.randn(groups, cols, 3 * cols, generator=g)
    H = X @ X.transpose(1, 2) / X.shape[-1]
    result = get_solver(solver)(W, H, sparsity)
    numel = W.numel()
    removed = int((~result.mask).sum())
    assert abs(removed - sparsity * numel) <= groups * rows  # one weight column of the layer
    assert abs(removed - sparsity * numel) <= 1  # in fact: exact up to rounding
    assert torch.all(result.weight[~result.mask] == 0)
    assert result.weight.shape == W.shape


@pytest.mark.parametrize("solver", SOLVERS)
def test_target_zero_leaves_the_layer_and_one_empties_it(solver: str) -> None:
    w, H = _problem(3)
    untouched = get_solver(solver)(w, H, 0.0)
    assert torch.equal(untouched.weight[0], w) and bool(untouched.mask.all()) and untouched.rel_error == 0.0
    empty = get_solver(solver)(w, H, 1.0)
    assert not bool(empty.mask.any()) and bool((empty.weight == 0).all())
    assert empty.rel_error == pytest.approx(1.0)


def test_a_failing_cholesky_raises_the_damping_and_records_it() -> None:
    # an indefinite "Hessian" (as float rounding can produce): 1% damping is not enough, 10% is
    H = torch.diag(torch.tensor([1.0, 1.0, 1.0, -0.05]))[None]
    _, used = damped_cholesky(H, 0.01)
    assert used == pytest.approx(0.1)
    result = get_solver("sparsegpt")(torch.ones(2, 4), H[0], 0.5)
    assert result.damping == pytest.approx(0.1)
    with pytest.raises(DampingError, match="not positive definite"):
        damped_cholesky(torch.diag(torch.tensor([1.0, -1e9]))[None], 0.01)


def test_dead_inputs_do_not_break_the_solvers() -> None:
    # a column whose input is always zero (a dead ReLU channel): H has a zero row and column
    X = torch.randn(6, 30)
    X[2] = 0
    H = X @ X.T / 30
    W = torch.randn(4, 6)
    for name in SOLVERS:
        result = get_solver(name)(W, H, 0.5)
        assert torch.isfinite(result.weight).all() and 0 <= result.rel_error < 1


def test_unknown_solver_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown solver 'sgd'"):
        get_solver("sgd")
