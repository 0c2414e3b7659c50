"""`spade.prune` end to end: real images, the real EfficientNet-Lite0, torchvision architectures."""
from __future__ import annotations

import warnings

import pytest
import torch
import torchvision

import spade
from spade import schedules

from tests.spade.samples import lite0, sample_images

TAIL = ["_blocks.14.*", "_blocks.15.*", "_conv_head", "_fc"]


def _masks(trace: spade.Trace) -> dict[str, torch.Tensor]:
    return {n: l.mask() for n, l in trace.layers.items() if not l.untouched}


@pytest.fixture(scope="module")
def tail_trace() -> spade.Trace:
    model, pp = lite0()
    return spade.prune(model, sample_images(1)[0], sparsity=0.7, n_augmentations=16, batch_size=8, seed=3,
                       layers=TAIL, preprocess=pp, progress=False)


def test_same_seed_same_masks_other_seed_other_masks(tail_trace: spade.Trace) -> None:
    model, pp = lite0()
    kwargs = dict(sparsity=0.7, n_augmentations=16, layers=TAIL, preprocess=pp, progress=False)
    a = _masks(tail_trace)
    b = _masks(spade.prune(model, sample_images(1)[0], batch_size=8, seed=3, **kwargs))
    assert a.keys() == b.keys() and len(a) == 8
    assert all(torch.equal(a[n], b[n]) for n in a)
    # another batch size draws the same samples; only float rounding of the sums differs
    c = _masks(spade.prune(model, sample_images(1)[0], batch_size=16, seed=3, **kwargs))
    other = _masks(spade.prune(model, sample_images(1)[0], batch_size=8, seed=4, **kwargs))
    agree_c = sum(int((a[n] == c[n]).sum()) for n in a) / sum(a[n].numel() for n in a)
    agree_other = sum(int((a[n] == other[n]).sum()) for n in a) / sum(a[n].numel() for n in a)
    print(agree_c, agree_other)
    assert agree_c > 0.99 and agree_other < 0.95


def test_achieved_sparsity_within_one_weight_column(tail_trace: spade.Trace) -> None:
    report = tail_trace.report()
    assert list(report.columns) == ["layer", "target_sparsity", "sparsity", "rel_error", "damping"]
    model, _ = lite0()
    modules = dict(model.named_modules())
    for row in report.itertuples():
        w = modules[row.layer].weight
        column = w.shape[0]  # a weight column of the rows x cols matrix: one weight per output
        assert abs(row.sparsity - row.target_sparsity) * w.numel() <= column, row
        assert 0 < row.rel_error < 1 and row.damping == pytest.approx(0.01)


def test_save_load_round_trip_reproduces_the_pruned_outputs_exactly(tail_trace: spade.Trace, tmp_path) -> None:
    model, pp = lite0()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.cat([pp(p) for p in sample_images(3)])
    path = tmp_path / "trace.pt"
    tail_trace.save(path)
    loaded = spade.Trace.load(path)
    with torch.inference_mode():
        y_mem = tail_trace.apply(model)(x)
        y_disk = loaded.apply(model)(x)
        y_dense = model(x)
    assert torch.equal(y_mem, y_disk)
    assert not torch.allclose(y_mem, y_dense)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is never changed
    assert loaded.settings["seed"] == 3 and loaded.settings["n_augmentations"] == 16
    assert loaded.settings["targets"]["_fc"] == 0.7 and loaded.keeps_top1 == tail_trace.keeps_top1
    assert loaded.report().equals(tail_trace.report())
    # stored compactly: one bit per weight plus the kept values
    fc = loaded.layers["_fc"]
    assert fc.packed_mask.numel() == (fc.numel + 7) // 8 and fc.values.numel() == int(fc.mask().sum())


def test_load_rejects_what_is_not_a_trace(tmp_path) -> None:
    (tmp_path / "x.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a SPADE trace"):
        spade.Trace.load(tmp_path / "x.pt")
    torch.save({"format": "something else"}, tmp_path / "y.pt")
    with pytest.raises(ValueError, match="not a SPADE trace"):
        spade.Trace.load(tmp_path / "y.pt")


@pytest.mark.slow
def test_default_schedule_keeps_the_dense_top1_on_20_sample_images() -> None:
    model, pp = lite0()
    kept = []
    for path in sample_images(20):
        trace = spade.prune(model, path, sparsity=schedules.DEFAULT, n_augmentations=16, batch_size=16,
                            preprocess=pp, progress=False)
        kept.append(trace.keeps_top1)
    report = trace.report()
    assert report.target_sparsity.iloc[0] == 0 and report.target_sparsity.iloc[-1] == pytest.approx(schedules.DEFAULT.end)
    assert sum(kept) >= 18, kept


@pytest.mark.parametrize("arch,layers", [
    ("resnet50", ["layer4.2.conv1", "layer4.2.conv3", "fc"]),
    ("mobilenet_v3_large", None),  # the full model: every Conv2d/Linear, depthwise and squeeze-excite included
    ("convnext_tiny", ["features.7.2.*", "classifier.2"]),
    ("vit_b_16", ["conv_proj", "encoder.layers.encoder_layer_11.self_attention.out_proj",
                  "encoder.layers.encoder_layer_11.mlp.0", "heads.head"]),
])
def test_torchvision_architectures_with_random_weights(arch: str, layers) -> None:
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None).eval()
    if arch == "vit_b_16":
        torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision initializes it to zero
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trace = spade.prune(model, sample_images(2)[1], sparsity=0.5, n_augmentations=4, batch_size=4,
                            layers=layers, progress=False)
    report = trace.report()
    pruned = report[report.target_sparsity > 0]
    assert len(pruned) >= (50 if layers is None else 3)
    assert ((pruned.sparsity - 0.5).abs() < 0.06).all()
    assert (pruned.rel_error < 1).all() and report.rel_error.notna().all()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    if arch == "vit_b_16":
        # attention projections are weights used functionally: never run as modules, reported, left alone
        assert trace.settings["skipped_layers"] == ["encoder.layers.encoder_layer_11.self_attention.out_proj"]
        assert any("never run" in str(w.message) for w in caught)
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert not torch.equal(trace.apply(model)(x), model(x))


def test_bad_arguments_are_clear_errors() -> None:
    model, pp = lite0()
    image = sample_images(1)[0]
    with pytest.raises(ValueError, match="matches no Conv2d or Linear"):
        spade.prune(model, image, sparsity=0.5, layers=["_blocks.99.*"], preprocess=pp)
    with pytest.raises(ValueError, match="n_augmentations"):
        spade.prune(model, image, sparsity=0.5, n_augmentations=0, preprocess=pp)
    with pytest.raises(ValueError, match="unknown solver"):
        spade.prune(model, image, sparsity=0.5, solver="sgd", n_augmentations=2, layers=["_fc"], preprocess=pp)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        spade.prune(model, image, sparsity=1.5, n_augmentations=2, layers=["_fc"], preprocess=pp)
    with pytest.raises(TypeError, match="PIL image, a CHW tensor or a path"):
        spade.prune(model, [1, 2], sparsity=0.5, n_augmentations=2, layers=["_fc"], preprocess=pp)


def test_a_chw_tensor_image_gives_the_same_trace_as_the_pil_image() -> None:
    from PIL import Image
    from torchvision.transforms.v2.functional import pil_to_tensor

    model, pp = lite0()
    with Image.open(sample_images(4)[3]) as im:
        pil = im.convert("RGB")
    kwargs = dict(sparsity=0.8, n_augmentations=4, layers=["_fc"], preprocess=pp, progress=False)
    a = spade.prune(model, pil, **kwargs)
    b = spade.prune(model, pil_to_tensor(pil), **kwargs)
    assert torch.equal(a.layers["_fc"].mask(), b.layers["_fc"].mask())


def test_thread_count_is_capped_by_the_free_cores(monkeypatch) -> None:
    from spade import threads

    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (7.5, 7.0, 6.0))  # a busy shared machine
    assert threads.sound_thread_count(2) == 1
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.1, 0.1, 0.1))  # idle
    assert threads.sound_thread_count(2) == 2 and threads.sound_thread_count(1) == 1
    before = torch.get_num_threads()
    with threads.cpu_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
