"""Stage 1: predict the whole dataset in batches; the candidates are the misclassified samples, in a seeded order."""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from tqdm.auto import tqdm

from generation.classifier import Classifier
from generation.dataset import ImageLoadError, Sample, load_rgb
from contracts.manifest import write_json_atomic

SAVE_EVERY_S = 30.0  # how often a long prediction run checkpoints its results


@dataclass
class Predictions:
    """Top-1 class per image source, the images skipped (with reasons), and conversion notes."""

    predicted: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write atomically (a killed run keeps the last checkpoint)."""
        write_json_atomic(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> "Predictions":
        """Read a checkpoint, or start empty when there is none."""
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(dict(data["predicted"]), dict(data["skipped"]), {k: list(v) for k, v in data["notes"].items()})


class _ModelInputs(TorchDataset):
    """Images as model inputs; an unreadable image yields its reason instead of a tensor."""

    def __init__(self, samples: list[Sample], classifier: Classifier) -> None:
        self.samples = samples
        self.preprocess = classifier.preprocess

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[str, torch.Tensor | None, list[str], str | None]:
        s = self.samples[i]
        try:
            image, notes = load_rgb(s.path, self.preprocess.size)
        except ImageLoadError as exc:
            return s.source, None, [], str(exc)
        p = self.preprocess
        return s.source, p.normalize(p.crop(p.load(image))), notes, None


def _as_list(batch: list) -> list:
    return batch


def predict(classifier: Classifier, samples: list[Sample], *, batch_size: int = 32, workers: int = 0,
            checkpoint: Path | None = None, progress: bool = True) -> Predictions:
    """Top-1 predictions of the dense model for every readable sample; resumes from `checkpoint`."""
    result = Predictions.load(checkpoint) if checkpoint is not None else Predictions()
    todo = [s for s in samples if s.source not in result.predicted and s.source not in result.skipped]
    loader = DataLoader(_ModelInputs(todo, classifier), batch_size=batch_size, num_workers=workers,
                        collate_fn=_as_list)
    last_save = time.monotonic()
    with tqdm(total=len(samples), initial=len(samples) - len(todo), desc="predict", unit="img",
              disable=not progress) as bar, torch.inference_mode():
        for batch in loader:
            good = [(src, x) for src, x, _, err in batch if err is None]
            for src, _, notes, err in batch:
                if err is not None:
                    result.skipped[src] = err
                    tqdm.write(f"skipped {src}: {err}")
                elif notes:
                    result.notes[src] = notes
            if good:
                logits = classifier.model(torch.stack([x for _, x in good]).to(classifier.device))
                for (src, _), top1 in zip(good, logits.argmax(dim=1).tolist()):
                    result.predicted[src] = int(top1)
            bar.update(len(batch))
            if checkpoint is not None and time.monotonic() - last_save > SAVE_EVERY_S:
                result.save(checkpoint)
                last_save = time.monotonic()
    if checkpoint is not None:
        result.save(checkpoint)
    return result


def misclassified(samples: list[Sample], predictions: Predictions, seed: int) -> list[tuple[Sample, int]]:
    """The samples whose top-1 differs from their label, with that top-1, in an order fixed by `seed`."""
    out = [(s, predictions.predicted[s.source]) for s in sorted(samples, key=lambda s: s.source)
           if s.source in predictions.predicted and predictions.predicted[s.source] != s.class_index]
    random.Random(seed).shuffle(out)
    return out
