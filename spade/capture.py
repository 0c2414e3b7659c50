"""One pass of the dense model: streaming Hessians H = X X^T / n of every selected layer's input."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

# Elements of one im2col chunk. On CPU a cache-sized chunk (per sample, a block of groups) is
# 2.5-4x faster than unfolding the whole batch and multiplying per sample (measured on
# EfficientNet-Lite0's depthwise layers); on a GPU large chunks keep the kernel launches few.
_CHUNK_ELEMENTS = {"cpu": 1 << 18}
_CHUNK_ELEMENTS_DEFAULT = 1 << 26


def is_prunable(module: nn.Module) -> bool:
    """True for the layer types SPADE prunes: Conv2d (and subclasses) and Linear."""
    return isinstance(module, (nn.Conv2d, nn.Linear))


def weight_groups(module: nn.Module) -> int:
    """Number of independent weight groups (the `groups` of a convolution, 1 for Linear)."""
    return int(module.groups) if isinstance(module, nn.Conv2d) else 1


def grouped_weight(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """View a Conv2d/Linear weight as groups x rows x columns (columns: the inputs of one output)."""
    out = weight.shape[0]
    return weight.reshape(groups, out // groups, -1)


def _patches(module: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Strided view (no copy) of the convolution's input patches: N x groups x C/groups x kh x kw x oh x ow."""
    x = _padded_input(module, x).contiguous()  # channels-last inputs: gathers below need NCHW order
    n, c = x.shape[:2]
    g = module.groups
    kh, kw = module.kernel_size
    (sh, sw), (dh, dw) = module.stride, module.dilation
    v = x.unfold(2, dh * (kh - 1) + 1, sh).unfold(3, dw * (kw - 1) + 1, sw)[..., ::dh, ::dw]
    # columns ordered channel, kernel row, kernel column: the layout of weight.reshape(out, -1)
    v = v.permute(0, 1, 4, 5, 2, 3)
    return v.reshape(n, g, c // g, *v.shape[2:]) if v.is_contiguous() else v.view(n, g, c // g, *v.shape[2:])


def conv_gram(module: nn.Conv2d, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Sum of X X^T over samples and positions (groups x d x d) and the number of columns summed.

    im2col is done chunk by chunk from a strided view, never for the whole batch at once.
    """
    v = _patches(module, x)
    n, g = v.shape[:2]
    d = v.shape[2] * v.shape[3] * v.shape[4]
    length = v.shape[5] * v.shape[6]
    budget = _CHUNK_ELEMENTS.get(x.device.type, _CHUNK_ELEMENTS_DEFAULT)
    per_group = max(d * length, 1)
    gb = max(1, min(g, budget // per_group))
    nb = max(1, budget // (gb * per_group)) if gb == g else 1
    gram = x.new_zeros(g, d, d)
    for g0 in range(0, g, gb):
        for n0 in range(0, n, nb):
            chunk = v[n0:n0 + nb, g0:g0 + gb]  # nb x gb x Cg x kh x kw x oh x ow
            cols = chunk.permute(1, 2, 3, 4, 0, 5, 6).reshape(chunk.shape[1], d, -1)
            gram[g0:g0 + gb].baddbmm_(cols, cols.transpose(1, 2))
    return gram, n * length


def _padded_input(module: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """The input as the convolution sees it: after static (EfficientNet) and regular padding."""
    static_padding = getattr(module, "static_padding", None)  # Conv2dStaticSamePadding (EfficientNet)
    if static_padding is not None:
        x = static_padding(x)
    if isinstance(module.padding, str) or any(module.padding) or module.padding_mode != "zeros":
        mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        x = F.pad(x, module._reversed_padding_repeated_twice, mode=mode)
    return x


class HessianAccumulator:
    """Running average of X X^T over all inputs seen by one layer, one matrix per weight group."""

    def __init__(self, module: nn.Module, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        self.module = module
        self.groups = weight_groups(module)
        cols = grouped_weight(module.weight, self.groups).shape[-1]
        self.H = torch.zeros(self.groups, cols, cols, device=device, dtype=dtype)
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        """Fold one layer input into the running average."""
        x = x.detach().to(self.H.dtype)
        if isinstance(self.module, nn.Conv2d):
            self._update(*conv_gram(self.module, x))
        else:
            rows = x.reshape(-1, x.shape[-1])
            self._update((rows.t() @ rows)[None], rows.shape[0])

    def _update(self, gram: torch.Tensor, m: int) -> None:
        """H <- (n H + gram) / (n + m): a running mean, so H stays O(|x|^2) however many samples come."""
        if m == 0:
            return
        self.H.mul_(self.n / (self.n + m)).add_(gram, alpha=1.0 / (self.n + m))
        self.n += m


@contextmanager
def hooked(modules: dict[str, nn.Module], accumulators: dict[str, HessianAccumulator]) -> Iterator[None]:
    """Register forward hooks that feed each module's input into its accumulator."""
    handles = []
    try:
        for name, module in modules.items():
            acc = accumulators[name]
            handles.append(module.register_forward_hook(lambda mod, args, out, acc=acc: acc.add(args[0])))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def execution_order(modules: dict[str, nn.Module]) -> Iterator[list[str]]:
    """Record the names of `modules` in the order they first run during a forward pass."""
    order: list[str] = []
    seen: set[str] = set()

    def make_hook(name: str):
        def hook(mod: nn.Module, args: tuple, out: torch.Tensor) -> None:
            if name not in seen:
                seen.add(name)
                order.append(name)
        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in modules.items()]
    try:
        yield order
    finally:
        for h in handles:
            h.remove()


def capture_hessians(model: nn.Module, modules: dict[str, nn.Module], batches: Iterable[torch.Tensor],
                     device: torch.device) -> dict[str, HessianAccumulator]:
    """Run all batches through `model` once and return the input Hessian of every module in `modules`."""
    accumulators = {name: HessianAccumulator(m, device) for name, m in modules.items()}
    with hooked(modules, accumulators), torch.inference_mode():
        for batch in batches:
            model(batch)
    return accumulators
