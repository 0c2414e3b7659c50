"""One pass of the dense model: streaming Hessians H = X X^T / n of every selected layer's input."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn


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


def symmetric_gram(A: torch.Tensor, block: int = 256) -> torch.Tensor:
    """A A^T for A (batch x d x k), computing only the upper block triangle and mirroring it.

    torch has no SYRK; blocks of `block` rows give (b + 1) / 2b of the GEMM work (1.6-1.8x on
    the large 1x1 grams), and below two blocks a plain GEMM is as fast.
    """
    d = A.shape[1]
    if d < 2 * block:
        return torch.bmm(A, A.transpose(1, 2))
    out = A.new_empty(A.shape[0], d, d)
    for s in range(0, d, block):
        e = min(s + block, d)
        out[:, s:e, s:] = torch.bmm(A[:, s:e], A[:, s:].transpose(1, 2))
    for s in range(0, d, block):  # mirror: lower blocks are the transposes of the upper ones
        e = min(s + block, d)
        out[:, e:, s:e] = out[:, s:e, e:].transpose(1, 2)
    return out


def _pads(module: nn.Conv2d, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int, int], str]:
    """The input, its total (left, right, top, bottom) padding still to apply, and the padding mode.

    EfficientNet's static "same" padding (a ZeroPad2d before the convolution) is added to the
    convolution's own zero padding, never materialized; another static padding module is applied.
    """
    left = right = top = bottom = 0
    static_padding = getattr(module, "static_padding", None)  # Conv2dStaticSamePadding (EfficientNet)
    if isinstance(static_padding, nn.ZeroPad2d):
        left, right, top, bottom = static_padding.padding
    elif static_padding is not None and type(static_padding).__name__ != "Identity":
        x = static_padding(x)
    pl, pr, pt, pb = module._reversed_padding_repeated_twice
    mode = "zeros" if module.padding_mode == "zeros" else module.padding_mode
    return x, (left + pl, right + pr, top + pt, bottom + pb), mode


# Elements of one im2col chunk (depthwise layers). On CPU a cache-sized chunk (per sample, a block
# of groups) is 2.5-4x faster than unfolding the whole batch; on a GPU large chunks keep launches few.
_CHUNK_ELEMENTS = {"cpu": 1 << 18}
_CHUNK_ELEMENTS_DEFAULT = 1 << 26


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


def im2col_gram(module: nn.Conv2d, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """conv_gram by im2col, chunk by chunk from a strided view (depthwise convolutions: one channel per group).

    With one channel per group the band GEMMs of `conv_gram` are tiny (kw x kw) and memory-bound;
    cache-sized im2col chunks are 1.6x faster there (measured on a 3x3 depthwise layer, 56x56).
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
    x, (left, right, top, bottom), mode = _pads(module, x)
    if left or right or top or bottom:
        x = F.pad(x, (left, right, top, bottom), mode="constant" if mode == "zeros" else mode)
    return x


def conv_gram(module: nn.Conv2d, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Sum of X X^T over samples and output positions (groups x d x d) and the number of columns summed.

    Exact, without the full im2col: only the kernel's width is unfolded, its rows come from
    translation. Kernel row i reads input row sh*p + dh*i - top for output row p; split the rows
    by phase (mod sh), and two kernel rows whose reads differ by a whole number of rows of one
    phase see the same products over a band of rows. One GEMM per (phase, phase, shift) band,
    minus the few edge rows a pair does not see, replaces the kh*kh blocks of the im2col gram (3x3:
    3 band GEMMs of 3C x 3C, each 1/9 of the 9C x 9C gram's work), and zero padding rows are never
    multiplied. With kh = 1 it is the plain gram of the (strided) input.
    """
    g = module.groups
    if g == x.shape[1] and g > 1:
        return im2col_gram(module, x)
    x, (left, right, top, bottom), mode = _pads(module, x)
    n, c, h, _ = x.shape
    kh, kw = module.kernel_size
    (sh, sw), (dh, dw) = module.stride, module.dilation
    if mode == "zeros":
        xw = F.pad(x, (left, right)) if left or right else x
        row0 = top  # padding rows are zeros: left out, their products are 0
        height = h + top + bottom
    else:
        xw = F.pad(x, (left, right, top, bottom), mode=mode)
        row0, height = 0, xw.shape[2]
    oh = (height - dh * (kh - 1) - 1) // sh + 1
    v = xw.unfold(3, dw * (kw - 1) + 1, sw)[..., ::dw]  # N x C x rows x ow x kw (a view)
    ow = v.shape[3]
    cg = c // g
    D = cg * kw
    # Z[phase]: groups x (C/g * kw) x rows x (N * ow), contiguous so that a band of rows is one matrix
    zs = {}
    taps = []  # per kernel row: (phase, first row index in that phase's image)
    for i in range(kh):
        off = dh * i - row0  # input row of output row 0 (may be negative: a padding row)
        taps.append((off % sh, off // sh))
    for phase in sorted({p for p, _ in taps}):
        rows = v[:, :, phase::sh] if sh > 1 else v
        m = rows.shape[2]
        z = rows.reshape(n, g, cg, m, ow, kw).permute(1, 2, 5, 3, 0, 4).reshape(g, D, m, n * ow)
        zs[phase] = z
    gram6 = x.new_zeros(g, cg, kh, kw, cg, kh, kw)
    cache: dict[tuple, torch.Tensor] = {}

    def product(pa: int, pb: int, shift: int, lo: int, hi: int) -> torch.Tensor:
        """Sum over rows r in [lo, hi) of Z[pa][r] Z[pb][r + shift]^T (groups x D x D)."""
        key = (pa, pb, shift, lo, hi)
        if key not in cache:
            A = zs[pa][:, :, lo:hi].reshape(g, D, -1)
            if pa == pb and shift == 0:
                cache[key] = symmetric_gram(A)
            else:
                B = zs[pb][:, :, lo + shift:hi + shift].reshape(g, D, -1)
                cache[key] = torch.bmm(A, B.transpose(1, 2))
        return cache[key]

    groups_of_pairs: dict[tuple[int, int, int], list[tuple[int, int, int, int]]] = {}
    for i in range(kh):
        for j in range(i, kh):
            (pa, ka), (pb, kb) = taps[i], taps[j]
            shift = kb - ka
            ma, mb = zs[pa].shape[2], zs[pb].shape[2]
            lo, hi = max(ka, 0, -shift), min(ka + oh, ma, mb - shift)
            groups_of_pairs.setdefault((pa, pb, shift), []).append((i, j, lo, hi))
    for (pa, pb, shift), pairs in groups_of_pairs.items():
        seen = [(lo, hi) for *_, lo, hi in pairs if hi > lo]
        band_lo, band_hi = (min(lo for lo, _ in seen), max(hi for _, hi in seen)) if seen else (0, 0)
        for i, j, lo, hi in pairs:
            if hi <= lo:
                continue  # this pair of kernel rows only ever sees padding
            edges = (lo - band_lo) + (band_hi - hi)
            if len(pairs) == 1 or edges >= hi - lo:
                block = product(pa, pb, shift, lo, hi)
            else:
                block = product(pa, pb, shift, band_lo, band_hi).clone()
                for r in [*range(band_lo, lo), *range(hi, band_hi)]:
                    block -= product(pa, pb, shift, r, r + 1)
            blk = block.view(g, cg, kw, cg, kw)
            gram6[:, :, i, :, :, j, :] = blk
            if i != j:
                gram6[:, :, j, :, :, i, :] = blk.permute(0, 3, 4, 1, 2)
    d = cg * kh * kw
    return gram6.view(g, d, d), n * oh * ow


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
            self._update(symmetric_gram(rows.t()[None]), rows.shape[0])

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


class _ConvLeafTracer(torch.fx.Tracer):
    """fx tracer that keeps every Conv2d (subclasses too: EfficientNet's static-padding convs) a module call."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) or super().is_leaf_module(m, qualname)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of the eval-mode `model` with every BatchNorm2d that only follows a Conv2d folded into it.

    The inputs of every convolution stay what they were (folding changes a conv's output, which
    the removed BatchNorm would have rescaled anyway), so the Hessians captured on the copy are the
    model's. Written by hand because torch.fx's `fuse` matches plain nn.Conv2d only and traces
    through Conv2d subclasses (their hooks would then never run). Untraceable models are copied unfolded.
    """
    import copy

    work = copy.deepcopy(model)
    try:
        graph = _ConvLeafTracer().trace(work)
    except Exception:  # data-dependent control flow etc.: fx cannot trace it; keep the plain copy
        return work
    mods = dict(work.named_modules())
    folded = 0
    for node in list(graph.nodes):
        if node.op != "call_module" or not isinstance(mods.get(node.target), nn.BatchNorm2d) or len(node.args) != 1:
            continue
        src = node.args[0]
        if not isinstance(src, torch.fx.Node) or src.op != "call_module" or len(src.users) != 1:
            continue
        conv, bn = mods.get(src.target), mods[node.target]
        if not isinstance(conv, nn.Conv2d) or bn.running_var is None or bn.num_features != conv.out_channels:
            continue
        with torch.no_grad():
            scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
            shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1), requires_grad=False)
            conv.bias = nn.Parameter((bias - bn.running_mean) * scale + shift, requires_grad=False)
        node.replace_all_uses_with(src)
        graph.erase_node(node)
        folded += 1
    if not folded:
        return work
    return torch.fx.GraphModule(work, graph)


def forward_copy(model: nn.Module, device: torch.device) -> nn.Module:
    """The model the capture pass runs: BatchNorm folded and, on CPU, channels-last (a copy; `model` is untouched).

    channels_last lets oneDNN run the convolutions without layout reorders: 1.55x on the
    forward (issue 14's measurement); its inputs reach the Hessian code in that layout.
    """
    work = fold_batchnorm(model)
    if device.type == "cpu":
        work = work.to(memory_format=torch.channels_last)
    return work


def capture_hessians(model: nn.Module, modules: dict[str, nn.Module], batches: Iterable[torch.Tensor],
                     device: torch.device, fast: bool = True) -> dict[str, HessianAccumulator]:
    """Run all batches through `model` once and return the input Hessian of every module in `modules`.

    `fast`: run a BatchNorm-folded (channels-last on CPU) copy of the eval-mode model instead;
    `modules` are then matched by name in the copy. The Hessians are float32 throughout: bfloat16
    GEMM inputs were measured and rejected (ResNet18, 64 augmentations: 88% of sparsegpt's keep-mask
    entries agreed with float32's and rel_error rose 2.7x on average, for a 10% faster capture).
    """
    run = model
    if fast:
        names = {id(m): n for n, m in model.named_modules()}
        if all(id(m) in names and names[id(m)] == n for n, m in modules.items()):
            run = forward_copy(model, device)
            copies = dict(run.named_modules())
            if all(n in copies for n in modules):
                modules = {n: copies[n] for n in modules}
            else:
                run = model
    accumulators = {name: HessianAccumulator(m, device) for name, m in modules.items()}
    with hooked(modules, accumulators), torch.inference_mode():
        for batch in batches:
            if run is not model and device.type == "cpu" and batch.dim() == 4:
                batch = batch.contiguous(memory_format=torch.channels_last)
            run(batch)
    return accumulators
