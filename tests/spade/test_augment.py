"""Seeded batched augmentations on real images."""
from __future__ import annotations

import torch

from spade.augment import Augmentations, augmented_batches, sample_params
from spade.preprocess import Preprocess

from tests.spade.samples import sample_images

PP = Preprocess()


def _batch(seed: int, n: int = 12, batch_size: int = 5, path=None) -> torch.Tensor:
    picture = PP.load(path or sample_images(1)[0])
    return torch.cat(list(augmented_batches(picture, n, batch_size, seed, PP)))


def test_first_sample_is_the_model_input_itself() -> None:
    path = sample_images(3)[2]
    batch = _batch(0, path=path)
    assert batch.shape == (12, 3, 224, 224)
    assert torch.equal(batch[0], PP(path)[0])


def test_same_seed_same_batch_whatever_the_batch_size() -> None:
    a, b = _batch(3, batch_size=5), _batch(3, batch_size=12)
    assert torch.allclose(a, b, atol=1e-6)
    c = _batch(4)
    assert not torch.allclose(a[1:], c[1:])


def test_samples_differ_and_stay_in_the_normalized_range() -> None:
    batch = _batch(1, n=32, batch_size=32)
    flat = batch.flatten(1)
    assert torch.cdist(flat, flat).fill_diagonal_(float("inf")).min() > 1.0  # no two samples alike
    lo = (0 - max(PP.mean)) / min(PP.std)
    hi = (1 - min(PP.mean)) / min(PP.std)
    assert float(batch.min()) >= lo - 1e-4 and float(batch.max()) <= hi + 1e-4


def test_parameters_follow_the_paper_ranges() -> None:
    aug = Augmentations()
    p = sample_params(4000, 256, 340, 224, seed=0, aug=aug)
    w, h = p.boxes[1:, 2] - p.boxes[1:, 0], p.boxes[1:, 3] - p.boxes[1:, 1]
    scale = w * h / (256 * 340)
    assert float(scale.min()) >= 0.2 * 0.99 and float(scale.max()) <= 1.0 + 1e-6
    assert float(p.boxes[:, 0].min()) >= 0 and float(p.boxes[:, 2].max()) <= 340 + 1e-3
    assert 0.45 < float(p.flip.float().mean()) < 0.55
    assert float(p.brightness.min()) >= 0.5 and float(p.brightness.max()) <= 1.5
    assert float(p.hue.abs().max()) <= 0.3
    erased = p.erase[1:, 2] > 0
    assert 0.45 < float(erased.float().mean()) < 0.55
    area = (p.erase[1:, 2] * p.erase[1:, 3])[erased].float() / 224 ** 2
    assert float(area.min()) >= 0.015 and float(area.max()) <= 0.34
    assert not p.flip[0] and p.hue[0] == 0 and p.brightness[0] == 1 and p.erase[0, 2] == 0


def test_random_remove_zeroes_a_rectangle_after_normalization() -> None:
    picture = PP.load(sample_images(1)[0])
    aug = Augmentations(erase_p=1.0, flip_p=0.0, brightness=0.0, hue=0.0)
    batch = torch.cat(list(augmented_batches(picture, 6, 6, 0, PP, aug)))
    params = sample_params(6, picture.shape[1], picture.shape[2], 224, 0, aug)
    for i in range(1, 6):
        top, left, h, w = params.erase[i].tolist()
        assert h > 0 and bool((batch[i, :, top:top + h, left:left + w] == 0).all())
        assert float((batch[i] == 0).float().mean()) < 0.5
