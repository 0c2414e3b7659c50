"""Streaming Hessians: unfold layout, stride/padding/dilation/groups, static padding, Linear with leading dims."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding
from torch import nn

from spade.capture import (HessianAccumulator, capture_hessians, forward_copy, grouped_weight, im2col_gram,
                           symmetric_gram, weight_groups)


CONVS = [
    dict(in_channels=6, out_channels=4, kernel_size=3, stride=2, padding=1, dilation=2, groups=2),
    dict(in_channels=6, out_channels=6, kernel_size=(3, 5), stride=(1, 2), padding=2, groups=6),  # depthwise
    dict(in_channels=4, out_channels=8, kernel_size=1),
    dict(in_channels=4, out_channels=8, kernel_size=2, stride=2, padding=1, padding_mode="reflect"),
    dict(in_channels=4, out_channels=4, kernel_size=3, padding="same", dilation=2),
    dict(in_channels=4, out_channels=8, kernel_size=1, stride=2, bias=False),
    # the translation (band) gram: row phases of strided convs, dilation, kernel rows that see only padding
    dict(in_channels=3, out_channels=4, kernel_size=3, stride=2, padding=1),
    dict(in_channels=3, out_channels=4, kernel_size=5, stride=3, padding=4, dilation=2),
    dict(in_channels=4, out_channels=4, kernel_size=(5, 2), stride=(2, 1), padding=(3, 0), groups=2),
    dict(in_channels=2, out_channels=2, kernel_size=3, stride=2, padding=1, padding_mode="circular"),
]


def _reference_columns(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """groups x d x (N*L) columns from F.unfold, independent of the library's own im2col."""
    if hasattr(conv, "static_padding"):
        x = conv.static_padding(x)
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    x = F.pad(x, conv._reversed_padding_repeated_twice, mode=mode)
    U = F.unfold(x, conv.kernel_size, dilation=conv.dilation, stride=conv.stride)
    n, d, length = U.shape
    g = conv.groups
    return U.reshape(n, g, d // g, length).permute(1, 2, 0, 3).reshape(g, d // g, n * length)


@pytest.mark.parametrize("spec", CONVS, ids=lambda s: f"k{s['kernel_size']}g{s.get('groups', 1)}")
def test_conv_hessian_matches_unfold_and_reproduces_the_output(spec: dict) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(**spec)
    x = torch.randn(5, conv.in_channels, 11, 13)
    acc = HessianAccumulator(conv, torch.device("cpu"))
    acc.add(x[:2])
    acc.add(x[2:])  # streamed in two pieces
    X = _reference_columns(conv, x)
    assert acc.n == X.shape[-1]
    assert torch.allclose(acc.H, X @ X.transpose(1, 2) / X.shape[-1], atol=1e-5)
    # the column order is the weight's: W X is the convolution (without bias)
    W = grouped_weight(conv.weight.detach(), weight_groups(conv))
    y = conv(x).detach()
    if conv.bias is not None:
        y = y - conv.bias.detach()[None, :, None, None]
    out = y.permute(1, 0, 2, 3).reshape(conv.groups, conv.out_channels // conv.groups, -1)
    assert torch.allclose(W @ X, out, atol=1e-5)


def test_efficientnet_static_same_padding_is_included() -> None:
    torch.manual_seed(0)
    conv = Conv2dStaticSamePadding(8, 8, 5, stride=2, groups=8, bias=False, image_size=14)
    assert isinstance(conv.static_padding, nn.ZeroPad2d)
    x = torch.randn(3, 8, 14, 14)
    acc = HessianAccumulator(conv, torch.device("cpu"))
    acc.add(x)
    X = _reference_columns(conv, x)
    assert acc.n == 3 * 7 * 7 and torch.allclose(acc.H, X @ X.transpose(1, 2) / X.shape[-1], atol=1e-5)
    W = grouped_weight(conv.weight.detach(), 8)
    assert torch.allclose(W @ X, conv(x).detach().permute(1, 0, 2, 3).reshape(8, 1, -1), atol=1e-5)


def test_linear_with_leading_dimensions_and_running_mean() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(6, 3)
    tokens = torch.randn(4, 7, 6)  # batch x tokens x features
    acc = HessianAccumulator(lin, torch.device("cpu"))
    for chunk in tokens.split([1, 3]):
        acc.add(chunk)
    X = tokens.reshape(-1, 6)
    assert acc.n == 28
    assert torch.allclose(acc.H[0], X.T @ X / 28, atol=1e-6)


def test_running_mean_stays_accurate_over_many_batches() -> None:
    # 2000 updates of large activations: the running mean equals the mean over all rows
    torch.manual_seed(0)
    lin = nn.Linear(4, 1)
    acc = HessianAccumulator(lin, torch.device("cpu"))
    xs = 1e3 * torch.randn(2000, 5, 4, dtype=torch.float64)
    for x in xs:
        acc.add(x.float())
    X = xs.reshape(-1, 4)
    ref = X.T @ X / X.shape[0]
    assert torch.allclose(acc.H[0].double(), ref, rtol=1e-4)


def test_one_pass_captures_every_layer_of_a_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=4), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 5)).eval()
    calls = []
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    modules = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    batches = [torch.randn(2, 3, 8, 8) for _ in range(3)]
    accs = capture_hessians(model, modules, iter(batches), torch.device("cpu"))
    assert len(calls) == 3  # one forward per batch, all layers at once
    assert set(accs) == {"0", "2", "4"}
    assert accs["0"].n == 6 * 64 and accs["2"].H.shape == (4, 9, 9) and accs["4"].n == 6


def test_symmetric_gram_matches_the_full_product_above_the_block_size() -> None:
    torch.manual_seed(0)
    A = torch.randn(2, 700, 90, dtype=torch.float64)  # 3 blocks of 256: the upper-triangle path
    assert torch.allclose(symmetric_gram(A), A @ A.transpose(1, 2))
    small = A[:, :100]
    assert torch.allclose(symmetric_gram(small), small @ small.transpose(1, 2))


@pytest.mark.parametrize("stride", [1, 2])
def test_band_gram_equals_im2col_gram_on_a_dense_layer(stride: int) -> None:
    # the two fast paths of conv_gram agree on the same layer (a 3x3 conv of 16 channels)
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 8, 3, stride=stride, padding=1)
    x = torch.randn(3, 16, 12, 10, dtype=torch.float64)
    conv = conv.double()
    acc = HessianAccumulator(conv, torch.device("cpu"), dtype=torch.float64)
    acc.add(x)
    gram, m = im2col_gram(conv, x)
    assert m == acc.n and torch.allclose(acc.H * m, gram)


class _Shared(nn.Module):
    """conv -> BN, a static-padding conv -> BN, and a conv whose output also skips past its BN."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.bn_a = nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)
        self.b, self.bn_b = Conv2dStaticSamePadding(6, 6, 3, stride=2, groups=6, image_size=12), nn.BatchNorm2d(6)
        self.c, self.bn_c = nn.Conv2d(6, 6, 1), nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn_a(self.a(x)))
        x = torch.relu(self.bn_b(self.b(x)))
        y = self.c(x)
        return self.fc((self.bn_c(y) + y).mean((2, 3)))  # y is used twice: bn_c must stay


def test_batchnorm_folded_channels_last_copy_keeps_outputs_and_hessians() -> None:
    torch.manual_seed(0)
    model = _Shared()
    for bn in (model.bn_a, model.bn_b, model.bn_c):  # non-trivial running statistics
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 2)
    model.eval()
    copy = forward_copy(model, torch.device("cpu"))
    kinds = [type(m).__name__ for m in copy.modules()]
    assert kinds.count("BatchNorm2d") == 1  # bn_a and bn_b folded, bn_c kept
    x = torch.randn(4, 3, 12, 12)
    with torch.inference_mode():
        assert torch.allclose(copy(x.contiguous(memory_format=torch.channels_last)), model(x), atol=1e-5)
        modules = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
        plain = capture_hessians(model, modules, [x[:2], x[2:]], torch.device("cpu"), fast=False)
        fast = capture_hessians(model, modules, [x[:2], x[2:]], torch.device("cpu"), fast=True)
    assert set(fast) == set(modules)
    for name in modules:
        assert fast[name].n == plain[name].n
        assert torch.allclose(fast[name].H, plain[name].H, atol=1e-5, rtol=1e-4), name
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(model.parameters(), copy.parameters()))
