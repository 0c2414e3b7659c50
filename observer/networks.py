"""Which embedding the observer uses: a network name, its weights and a layer, known without loading them (no torch)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

DEFAULT_NETWORK = "efficientnet_lite0"
PENULTIMATE = "penultimate"  # the input of the network's last Linear layer


class EmbeddingError(ValueError):
    """A network or layer that cannot be used; the message is one line."""


def network_label(network: str, layer: str | None) -> str:
    """The network column of the results: `name` for the penultimate layer, else `name:layer`."""
    return network if layer in (None, PENULTIMATE) else f"{network}:{layer}"


def embedding_key(network: str, weights: str | None, layer: str | None) -> dict[str, Any]:
    """What identifies an embedding without loading it (stored in the results' meta, compared on resume)."""
    if weights is not None and weights != "random":
        weights = str(Path(weights).resolve())  # the same file from another folder is the same embedding
    return {"network": network, "weights": weights, "layer": layer or PENULTIMATE}
