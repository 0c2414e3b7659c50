"""`prune`: build the SPADE trace of one image (augment, capture all layers in one pass, solve each layer)."""
from __future__ import annotations

import fnmatch
import time
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from . import schedules
from .augment import Augmentations, augmented_batches
from .capture import capture_hessians, execution_order, grouped_weight, is_prunable, weight_groups
from .preprocess import ImageLike, Preprocess
from .solvers import check_options, get_solver, layer_options
from .solvers.damping import DEFAULT_DAMPING, parse_damping
from .threads import cpu_threads, sound_thread_count
from .trace import LayerTrace, Trace


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_batch_size(device: torch.device) -> int:
    """Augmented samples per forward pass: bounded by memory on CPU, larger on an accelerator."""
    return 128 if device.type == "cuda" else 32


def select_layers(model: nn.Module, layers: Sequence[str] | None = None) -> dict[str, nn.Module]:
    """The prunable (Conv2d/Linear) modules of `model`, optionally restricted to names or glob patterns."""
    prunable = {name: m for name, m in model.named_modules() if name and is_prunable(m)}
    if layers is None:
        return prunable
    if isinstance(layers, str):
        layers = [layers]
    chosen: dict[str, nn.Module] = {}
    for pattern in layers:
        hits = [n for n in prunable if n == pattern or fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ValueError(f"layer {pattern!r} matches no Conv2d or Linear layer of the model")
        chosen.update({n: prunable[n] for n in hits})
    return {n: m for n, m in prunable.items() if n in chosen}


@contextmanager
def _flush_denormals() -> Iterator[None]:
    """Treat float32 denormals as zero on CPU: tiny entries of H^-1 otherwise slow the solvers down 5x."""
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported:
            torch.set_flush_denormal(False)  # torch's default; it has no getter to restore another value


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put `model` in eval mode and restore every module's own training flag afterwards."""
    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags.items():
            m.train(flag)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _top1(output: torch.Tensor | tuple | dict) -> int | None:
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    if isinstance(output, torch.Tensor) and output.dim() == 2:
        return int(output[0].argmax())
    return None


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def prune(model: nn.Module, image: ImageLike, *, sparsity: schedules.SparsitySpec, solver: str = "sparsegpt",
          n_augmentations: int = 1024, batch_size: int | None = None, seed: int = 0,
          layers: Sequence[str] | None = None, preprocess: Preprocess | None = None,
          device: str | torch.device | None = None, damping: float | str | None = DEFAULT_DAMPING,
          block_size: int | str | None = None,
          augmentations: Augmentations = Augmentations(), progress: bool = True) -> Trace:
    """Build the SPADE trace of `image` on `model` (which is not changed); see `Trace.apply`.

    `damping`: relative damping of every Hessian, or "reference"/None (damp only when Cholesky fails).
    `block_size` (sparsegpt only): columns per adaptive-mask block, None: 128, "reference": kh*kw / 1.
    """
    if n_augmentations < 1:
        raise ValueError(f"n_augmentations must be >= 1, got {n_augmentations}")
    preprocess = preprocess or Preprocess()
    device = torch.device(device) if device is not None else _model_device(model)
    batch_size = int(batch_size or default_batch_size(device))
    picture = preprocess.load(image).to(device)
    x0 = preprocess.normalize(preprocess.crop(picture))[None]
    trace = _prune(model, x0, lambda: augmented_batches(picture, n_augmentations, batch_size, seed, preprocess,
                                                        augmentations),
                   n_augmentations, sparsity=sparsity, solver=solver, layers=layers, device=device,
                   damping=damping, block_size=block_size, progress=progress)
    trace.settings.update({"n_augmentations": int(n_augmentations), "batch_size": batch_size, "seed": int(seed),
                           "preprocess": preprocess.to_dict(), "augmentations": augmentations.to_dict()})
    return trace


def prune_inputs(model: nn.Module, inputs: torch.Tensor, *, sparsity: schedules.SparsitySpec,
                 solver: str = "sparsegpt", batch_size: int | None = None, layers: Sequence[str] | None = None,
                 device: str | torch.device | None = None, damping: float | str | None = DEFAULT_DAMPING,
                 block_size: int | str | None = None, progress: bool = False) -> Trace:
    """Like `prune`, for ready-made model inputs (first row: the sample; the rest: its variations)."""
    device = torch.device(device) if device is not None else _model_device(model)
    batch_size = int(batch_size or default_batch_size(device))
    inputs = inputs.to(device)
    trace = _prune(model, inputs[:1], lambda: iter(inputs.split(batch_size)), inputs.shape[0], sparsity=sparsity,
                   solver=solver, layers=layers, device=device, damping=damping, block_size=block_size,
                   progress=progress)
    trace.settings.update({"n_augmentations": int(inputs.shape[0]), "batch_size": batch_size})
    return trace


def _prune(model: nn.Module, x0: torch.Tensor, make_batches: Callable[[], Iterator[torch.Tensor]], total: int, *,
           sparsity: schedules.SparsitySpec, solver: str, layers: Sequence[str] | None, device: torch.device,
           damping: float | str | None, block_size: int | str | None, progress: bool) -> Trace:
    """Probe the layer order, capture all Hessians in one pass over the batches, solve every layer."""
    solve = get_solver(solver)
    damping = parse_damping(damping)
    check_options(solver, block_size)
    timings: dict[str, float] = {}
    work = model if _model_device(model) == device else _copy_to(model, device)
    modules = select_layers(work, layers)
    if not modules:
        raise ValueError("the model has no Conv2d or Linear layer to prune")

    threads = sound_thread_count() if device.type == "cpu" else torch.get_num_threads()
    with _eval_mode(work), torch.inference_mode(), _flush_denormals(), cpu_threads(threads):
        t = time.perf_counter()
        with execution_order(modules) as order:
            dense_out = work(x0)
        dense_top1 = _top1(dense_out)
        skipped = [n for n in modules if n not in order]
        if skipped:
            # e.g. nn.MultiheadAttention's out_proj: its weight is used functionally, the module never runs
            warnings.warn(f"{len(skipped)} layer(s) never run in forward and are left as they are: "
                          f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}", stacklevel=3)
        targets = schedules.resolve(sparsity, order, modules, known=list(select_layers(work)))
        active = {n: modules[n] for n in order if targets[n] > 0}
        _sync(device)
        timings["probe"] = time.perf_counter() - t

        # batches are made lazily inside the capture loop; time their making separately
        making = 0.0

        def batches() -> Iterator[torch.Tensor]:
            nonlocal making
            it = make_batches()
            bar = tqdm(total=total, desc="capture", unit="sample", disable=not progress, leave=False)
            while True:
                t0 = time.perf_counter()
                batch = next(it, None)
                _sync(device)
                making += time.perf_counter() - t0
                if batch is None:
                    break
                yield batch
                bar.update(batch.shape[0])
            bar.close()

        t = time.perf_counter()
        hessians = capture_hessians(work, active, batches(), device) if active else {}
        _sync(device)
        timings["augment"] = making
        timings["capture"] = time.perf_counter() - t - making

        t = time.perf_counter()
        records: dict[str, LayerTrace] = {}
        for name in tqdm(order, desc=f"solve ({solver})", unit="layer", disable=not progress, leave=False):
            module = modules[name]
            target = targets[name]
            if target <= 0:
                records[name] = LayerTrace.untouched_layer(name, module.weight.shape)
                continue
            W = grouped_weight(module.weight.detach().float(), weight_groups(module))
            options = layer_options(solver, module, damping, block_size)
            result = solve(W, hessians.pop(name).H, target, **options)  # pop: free each H once used
            records[name] = LayerTrace.from_weight(name, result.weight.reshape(module.weight.shape),
                                                   result.mask.reshape(module.weight.shape), target,
                                                   result.rel_error, result.damping)
        _sync(device)
        timings["solve"] = time.perf_counter() - t

    settings = {
        "model": type(model).__name__, "solver": solver, "damping": damping, "block_size": block_size,
        "layers": list(layers) if layers is not None else None, "targets": dict(targets),
        "sparsity": sparsity if isinstance(sparsity, (int, float, dict)) else str(sparsity),
        "skipped_layers": skipped, "torch": str(torch.__version__), "threads": threads,
    }
    trace = Trace(records, settings, dense_top1=dense_top1, timings=timings)
    t = time.perf_counter()
    with torch.inference_mode():
        pruned = trace.apply(work)
        pruned.eval()
        trace.pruned_top1 = _top1(pruned(x0))
    timings["check"] = time.perf_counter() - t
    return trace


def _copy_to(model: nn.Module, device: torch.device) -> nn.Module:
    import copy

    return copy.deepcopy(model).to(device)
