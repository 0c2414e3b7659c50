"""Per-layer sparsity targets: a float, a mapping of names/glob patterns, or a schedule by depth."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Union, runtime_checkable


@runtime_checkable
class Schedule(Protocol):
    """Anything that maps the ordered layer names (execution order) to targets; `modules` (name ->
    nn.Module, when given) lets a schedule look at the layers themselves."""

    def resolve(self, layers: list[str], modules: Mapping[str, Any] | None = None) -> dict[str, float]: ...


def is_depthwise(module: Any) -> bool:
    """A convolution with one input channel per group (duck-typed: no torch import here)."""
    groups = getattr(module, "groups", 1)
    return isinstance(groups, int) and groups > 1 and groups == getattr(module, "in_channels", None)


SparsitySpec = Union[float, Mapping[str, float], Schedule]


@dataclass(frozen=True)
class Linear:
    """Target rising linearly with depth from `start` (first layer) to `end` (last layer): paper D.3."""

    start: float
    end: float
    skip_first: bool = False            # keep the first layer (the stem, on raw pixels) dense
    depthwise_max: float | None = None  # cap for depthwise convolutions (needs `modules`)

    def resolve(self, layers: list[str], modules: Mapping[str, Any] | None = None) -> dict[str, float]:
        """Map each layer (in execution order) to its target."""
        n = len(layers)
        out = {}
        for i, name in enumerate(layers):
            frac = i / (n - 1) if n > 1 else 1.0
            out[name] = self.start + (self.end - self.start) * frac
            if self.depthwise_max is not None and modules is not None and is_depthwise(modules.get(name)):
                out[name] = min(out[name], self.depthwise_max)
        if self.skip_first and layers:
            out[layers[0]] = 0.0
        return out

    def __str__(self) -> str:
        extra = (", first layer dense" if self.skip_first else "") + (
            f", depthwise <= {self.depthwise_max:g}" if self.depthwise_max is not None else "")
        return f"linear({self.start:g},{self.end:g}{extra})"


def linear(start: float, end: float) -> Linear:
    """The paper's depth heuristic: targets from `start` at the first layer to `end` at the last."""
    _check(start, "start")
    _check(end, "end")
    return Linear(float(start), float(end))


# The paper's heuristic for models without tuned targets (Appendix D.3): linear in depth from 0
# to 0.99, every layer pruned (the README's Python example). `parse("paper")` returns it.
PAPER: Linear = Linear(0.0, 0.99)


def paper() -> Linear:
    """The paper's depth heuristic: linear from 0 (first layer) to 0.99 (last layer)."""
    return PAPER


# The paper's tuned ResNet50 targets (Appendix). Keys are glob patterns over torchvision names;
# the stem conv (`conv1`) is never pruned.
resnet50_tuned: dict[str, float] = {
    "conv1": 0.0,
    "fc": 0.95,
    "layer4.*": 0.95,
    "layer3.5.*": 0.0,
    "layer3.4.*": 0.0,
    "layer3.3.*": 0.8,
    "layer3.2.*": 0.9,
    "layer3.1.*": 0.8,
    "layer3.0.*": 0.8,
    "layer2.3.*": 0.95,
    "layer2.2.*": 0.99,
    "layer2.1.*": 0.0,
    "layer2.0.*": 0.2,
    "layer1.2.*": 0.0,
    "layer1.1.*": 0.8,
    "layer1.0.*": 0.2,
}

# Default for models without a tuned schedule: the depth heuristic up to 0.8, the first layer
# (the stem, on raw pixels) kept dense as in the tuned ResNet50 schedule, and depthwise
# convolutions (9 or 25 weights per filter: 80% would leave 2 to 5) pruned at most 50%.
# Tuned for top-1 agreement, measured on 20 sample images with EfficientNet-Lite0 (16 / 32
# augmentations), dense top-1 kept: this 19/20 and 20/20; without the depthwise cap 18/20 and
# 19/20; linear to 0.9: 13/20 at 16 and 64. It removes about half as many weights as PAPER
# (docs/spade.md, "Schedules", has the measured fractions).
DEFAULT: Linear = Linear(0.0, 0.8, skip_first=True, depthwise_max=0.5)


class UnmatchedKeyError(ValueError):
    """A key of a sparsity mapping names no layer (a typo would otherwise leave layers dense)."""


def resolve(spec: SparsitySpec, layers: list[str], modules: Mapping[str, Any] | None = None, *,
            known: list[str] | None = None) -> dict[str, float]:
    """Per-layer targets for `layers` (execution order); unmatched layers of a mapping get 0 (untouched).

    Every key of a mapping must match a layer of `known` (default: `layers`; give all the model's
    prunable layers when `layers` is a selection), else UnmatchedKeyError names it.
    """
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        _check(spec, "sparsity")
        return {name: float(spec) for name in layers}
    if isinstance(spec, Schedule):
        out = spec.resolve(list(layers), modules)
    elif isinstance(spec, Mapping):
        _check_keys(spec, list(layers) if known is None else list(known))
        out = {}
        for name in layers:
            if name in spec:
                out[name] = float(spec[name])
                continue
            matches = [v for pat, v in spec.items() if fnmatch.fnmatchcase(name, pat)]
            # the most specific (longest) pattern wins, e.g. "layer3.0.*" over "layer3.*"
            if matches:
                best = max((pat for pat in spec if fnmatch.fnmatchcase(name, pat)), key=len)
                out[name] = float(spec[best])
            else:
                out[name] = 0.0
    else:
        raise TypeError(f"sparsity must be a float, a mapping or a schedule, got {type(spec).__name__}")
    for name, value in out.items():
        _check(value, f"sparsity of {name}")
    return out


def _check_keys(spec: Mapping[str, Any], known: list[str]) -> None:
    unmatched = [k for k in spec if not any(k == n or fnmatch.fnmatchcase(n, k) for n in known)]
    if unmatched:
        shown = ", ".join(repr(k) for k in unmatched[:5]) + (" ..." if len(unmatched) > 5 else "")
        raise UnmatchedKeyError(f"sparsity key(s) {shown} match no Conv2d or Linear layer of the model")


def check_named(value: Any) -> Any:
    """Return `value`; a string must parse as a schedule, else ValueError with parse's one-line message.

    The validator of the `sparsity` key in every config (generation, saliency).
    """
    if isinstance(value, str):
        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
    return value


def parse(text: str) -> SparsitySpec:
    """Parse a command-line sparsity: `0.9`, `linear(0,0.99)`, `default`, `paper` or `resnet50_tuned`."""
    t = text.strip().replace(" ", "")
    if t == "default":
        return DEFAULT
    if t == "paper":
        return PAPER
    if t == "resnet50_tuned":
        return resnet50_tuned
    if t.startswith("linear(") and t.endswith(")"):
        parts = t[len("linear("):-1].split(",")
        if len(parts) == 2:
            try:
                return linear(float(parts[0]), float(parts[1]))
            except ValueError as exc:
                raise ValueError(f"bad sparsity {text!r}: {exc}") from None
    try:
        value = float(t)
    except ValueError:
        raise ValueError(f"bad sparsity {text!r} (a number in [0, 1], linear(START,END), default, paper or "
                         "resnet50_tuned)") from None
    _check(value, "sparsity")
    return value


def _check(value: float, what: str) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{what} must be in [0, 1], got {value}")
