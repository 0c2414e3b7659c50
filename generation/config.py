"""The generation config: a TOML file validated into frozen settings with documented defaults.

Validation is pydantic's (strict types, unknown keys forbidden); this module only turns its
errors into one line that names the file, the section and the key. Relative paths resolve
against the folder of the config file (or the `base` given to `config_from_dict`).
"""
from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from generation.errors import GenerationError

PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
RANDOM_WEIGHTS = "random"  # `weights = "random"` keeps the random initialization (benchmarks only)


class ConfigError(GenerationError):
    """A config that cannot be read or does not validate; the message is one line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _resolve(value: str | None, info: ValidationInfo) -> str | None:
    """Make a path from the config absolute, relative to the config file's folder."""
    if value is None or value == RANDOM_WEIGHTS:
        return value
    base = (info.context or {}).get("base")
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return str(path.resolve())


class ModelSettings(_Section):
    """[model]: the classifier and its input preprocessing."""

    name: str = "efficientnet_lite0"
    weights: str | None = None
    resize: PositiveInt | None = None
    size: PositiveInt | None = None
    mean: Annotated[list[float], Field(min_length=3, max_length=3)] | None = None
    std: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=3, max_length=3)] | None = None

    _paths = field_validator("weights")(_resolve)


class DataSettings(_Section):
    """[data]: where the images are and how they are labelled."""

    root: str
    labels: str | None = None
    wnids: str | None = None
    files: list[str] | None = None
    limit: PositiveInt | None = None
    batch_size: PositiveInt = 32
    workers: Annotated[int, Field(ge=0)] = 0

    _paths = field_validator("root", "labels", "wnids")(_resolve)


class StudySettings(_Section):
    """[study]: how many items, and the seed of every random choice."""

    items: PositiveInt = 100
    seed: Annotated[int, Field(ge=0)] = 0


class SpadeSettings(_Section):
    """[spade]: the per-item SPADE trace."""

    solver: Literal["sparsegpt", "obc", "magnitude"] = "sparsegpt"
    sparsity: Fraction | str | dict[str, Fraction] = "default"
    augmentations: PositiveInt = 1024
    batch_size: PositiveInt | None = None
    layers: list[str] | None = None
    save_traces: bool = False
    # sparsegpt only: columns per mask block (absent: 128) or "reference" (kh*kw / 1); docs/spade.md
    block_size: PositiveInt | Literal["reference"] | None = None
    # relative damping of the Hessians, or "reference": damp only when Cholesky fails (docs/spade.md)
    damping: Annotated[float, Field(ge=0.0)] | Literal["reference"] = 0.01

    @model_validator(mode="after")
    def _block_size_needs_sparsegpt(self) -> "SpadeSettings":
        if self.block_size is not None and self.solver != "sparsegpt":
            raise ValueError(f"block_size applies to the sparsegpt solver only, not to {self.solver!r}")
        return self

    @field_validator("sparsity")
    @classmethod
    def _known_schedule(cls, value: Any) -> Any:
        from spade.schedules import check_named

        return check_named(value)


class ScoreCamSettings(_Section):
    """[scorecam]: the dense model's saliency maps and the region rule."""

    layer: str = "auto"
    batch_size: PositiveInt = 64
    # pytorch-grad-cam softmaxes the channel scores; probabilities (0..1) would make that near-uniform
    # and the two classes' maps alike, so the default scores channels by the class logit
    target: Literal["logit", "softmax"] = "logit"
    # the shipped configs use 0.8: with EfficientNet-Lite0, 0.5 gives regions of half the image (docs/generation.md)
    threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    component: Literal["largest", "peak"] = "largest"
    max_channels: PositiveInt | None = None


class VisualizationSettings(_Section):
    """[visualization]: the feature visualizations of the two class logits."""

    method: str = "lucent_logit"
    steps: PositiveInt = 512
    size: PositiveInt = 224
    lr: Annotated[float, Field(gt=0.0)] = 0.05
    fft: bool = True
    decorrelate: bool = True
    transforms: Literal["standard", "none"] = "standard"
    render_size: PositiveInt | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class GenerationConfig(_Section):
    """The whole config: one attribute per TOML section."""

    model: ModelSettings = ModelSettings()
    data: DataSettings
    study: StudySettings = StudySettings()
    spade: SpadeSettings = SpadeSettings()
    scorecam: ScoreCamSettings = ScoreCamSettings()
    visualization: VisualizationSettings = VisualizationSettings()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (stored in the manifest's `study.config`)."""
        return self.model_dump(mode="json")


_SECTIONS: dict[str, type[_Section]] = {
    name: field.annotation for name, field in GenerationConfig.model_fields.items()  # type: ignore[misc]
}


def _one_line(exc: ValidationError, source: str) -> str:
    """The most telling validation error as `SOURCE: [section] key: message`."""
    # unknown keys first: a misspelt key often also causes a "missing" error
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    loc = [str(p) for p in err["loc"]][:2]  # deeper parts are pydantic's union branches
    if err["type"] == "extra_forbidden":
        key = loc[-1]
        section = _SECTIONS.get(loc[0]) if len(loc) == 2 else None
        known = list(section.model_fields) if section else list(_SECTIONS)
        near = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        scope = f"key {key!r} in [{loc[0]}]" if section else f"section [{key}]"
        return f"{source}: unknown {scope} (known: {', '.join(known)}){hint}"
    where = f"[{loc[0]}] {loc[1]}" if len(loc) == 2 else f"[{loc[0]}]" if loc else "config"
    if err["type"] == "missing":
        return f"{source}: {where} is required"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{source}: {where}: {msg} (got {err.get('input')!r})"


def config_from_dict(data: dict[str, Any], base: str | Path | None = None, source: str = "config") -> GenerationConfig:
    """Validate a config given as a dict (TOML layout); relative paths resolve against `base`."""
    try:
        return GenerationConfig.model_validate(data, context={"base": base})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, source)) from None


def load_config(path: str | Path) -> GenerationConfig:
    """Read and validate a TOML config; raise ConfigError with a one-line reason."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return config_from_dict(data, base=path.resolve().parent, source=str(path))
