"""Shared helpers of the generation tests: the sample images, small configs, and generated bundles.

Bundles are expensive (a real EfficientNet-Lite0 run), so each is built once per test session
and memoized here (a session fixture imported into several test modules would run once per module).
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import torch

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO.parent / "shared" / "data" / "imagenet-sample"
LABELS = SAMPLE / "labels.csv"


# A few sample images, so that prediction and screening stay cheap while every branch runs: with
# the real EfficientNet-Lite0 and the small settings below, two are classified right, and in the
# seeded order two misclassified ones are dropped (their regions intersect) among three kept.
SMALL_FILES = [
    "n01440764_tench.JPEG",           # classified right
    "n01514859_hen.JPEG",             # classified right
    "n01737021_water_snake.JPEG",     # misclassified, regions intersect: dropped
    "n01667778_terrapin.JPEG",        # misclassified, regions intersect: dropped
    "n01494475_hammerhead.JPEG",      # misclassified, kept
    "n04200800_shoe_shop.JPEG",       # misclassified, kept
    "n03876231_paintbrush.JPEG",      # misclassified, kept
]
SMALL_ITEMS = 3


def small_config(**overrides: Any) -> dict[str, Any]:
    """The small-settings config of the real runs (TOML layout as a dict); sections update with `overrides`."""
    cfg: dict[str, Any] = {
        "model": {"name": "efficientnet_lite0"},
        "data": {"root": str(SAMPLE), "labels": str(LABELS), "files": list(SMALL_FILES), "batch_size": 8},
        "study": {"items": SMALL_ITEMS, "seed": 0},
        "spade": {"augmentations": 16, "layers": ["_blocks.15.*", "_conv_head", "_fc"]},
        "scorecam": {"layer": "_blocks.15", "batch_size": 16, "max_channels": 16, "threshold": 0.8},
        "visualization": {"steps": 8, "size": 64, "render_size": 64},
    }
    for section, values in overrides.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


def write_toml(path: Path, cfg: dict[str, Any]) -> Path:
    """Write a (flat, two-level) config dict as TOML."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(type(v))

    lines = []
    for section, values in cfg.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in values.items() if v is not None]  # None: key left out
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


_TMP = Path(tempfile.mkdtemp(prefix="generation-tests-"))
atexit.register(shutil.rmtree, _TMP, True)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread (as the killed subprocess does), whatever other test modules set, then restore.

    One thread also because on a shared, oversubscribed CPU, OpenMP threads waiting on each other
    cost up to 10x; and the same thread count gives the same arithmetic in every run compared.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


@functools.cache
def killed_and_resumed_bundle() -> dict[str, Any]:
    """A bundle whose first run is killed (SIGKILL) right after its first item; a second run finishes it.

    Returns the bundle folder and what the first run left: the finished item ids and their item.json
    modification times, so tests can check that the second run redid nothing finished.
    """
    from generation.bundle import ITEM_JSON, ITEMS
    from generation.config import config_from_dict
    from generation.pipeline import generate

    out = _TMP / "single"
    cfg_path = write_toml(_TMP / "single.toml", small_config())
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from spade_study.cli import main; sys.exit(main(sys.argv[1:]))",
         "generate", str(cfg_path), "--out", str(out), "--quiet"],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if any((out / ITEMS).glob(f"*/{ITEM_JSON}")):
            break
        time.sleep(0.1)
    if proc.poll() is not None:
        raise RuntimeError(f"the first run ended before it was killed: {proc.stderr.read().decode()[-2000:]}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = {p.parent.name: p.stat().st_mtime_ns for p in (out / ITEMS).glob(f"*/{ITEM_JSON}")}
    leftovers = sorted(p.name for p in (out / ".work" / "tmp").glob("*")) if (out / ".work" / "tmp").exists() else []
    with one_thread():
        generate(config_from_dict(small_config()), out, progress=False)
    return {"out": out, "first_run_items": first, "tmp_after_kill": leftovers}


@functools.cache
def merged_shards_bundle() -> dict[str, Any]:
    """The same study built as shards 0/2 and 1/2 (in process), and their merge."""
    from generation.config import config_from_dict
    from generation.merge import merge
    from generation.pipeline import Shard, generate

    config = config_from_dict(small_config())
    with one_thread():  # the same arithmetic as the single run, so the merged pixels can be compared
        shards = [generate(config, _TMP / f"shard{i}", shard=Shard(i, 2), progress=False) for i in range(2)]
    merged = merge(shards, _TMP / "merged")
    return {"shards": shards, "merged": merged}
