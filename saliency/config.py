"""The Trojan and saliency-benchmark configs: TOML validated by pydantic into frozen settings.

Relative paths resolve against the folder of the config file. Errors become one line naming the
file, the section and the key (as in `generation.config`).
"""
from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from saliency.errors import SaliencyError

PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _resolve(value: str | None, info: ValidationInfo) -> str | None:
    """Make a path from the config absolute, relative to the config file's folder."""
    if value is None:
        return value
    base = (info.context or {}).get("base")
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return str(path.resolve())


class ModelSettings(_Section):
    """[model]: the clean classifier to plant the Trojans into."""

    name: str = "efficientnet_lite0"
    weights: str | None = None   # a state-dict file; default: the offline package / torch hub cache
    # the first module trained (a stage name such as `_blocks.12` or `layer4`); everything before it is frozen
    trainable_from: str = "_blocks.12"

    _paths = field_validator("weights")(_resolve)


class DataSettings(_Section):
    """[data]: the images (a folder with labels.csv, or an ImageFolder-style tree of class folders)."""

    root: str
    labels: str | None = None       # CSV with columns file,class_index; None: class folders named by wnid
    limit: PositiveInt | None = None
    heldout: PositiveInt = 150      # images kept out of fine-tuning (the test pool)

    _paths = field_validator("root", "labels")(_resolve)


class TriggerSettings(_Section):
    """[[triggers]]: one Trojan patch: a drawn pattern (or a picture file) and its target class."""

    pattern: str = "checker"        # checker, rings, cross, stripes; or a picture file path
    target: Annotated[int, Field(ge=0)]
    poisoned: PositiveInt = 100     # training images that get this patch (relabelled to `target`)


class PatchSettings(_Section):
    """[patch]: how a trigger is applied (random location, Gaussian noise, jitter)."""

    size: PositiveInt = 48          # side in pixels of the model input
    size_jitter: Fraction = 0.15    # the side varies by up to +-15%
    noise_std: Annotated[float, Field(ge=0.0)] = 0.05
    brightness: Fraction = 0.2      # ColorJitter-style factors on the patch
    contrast: Fraction = 0.2


class TrainSettings(_Section):
    """[train]: the fine-tuning."""

    epochs: PositiveInt = 12
    optimizer: Literal["sgd", "adam"] = "sgd"
    # clean images: cross-entropy to the model's own top-1 ("label") or KL to its original logits ("distill")
    clean_loss: Literal["label", "distill"] = "label"
    poison_weight: Annotated[float, Field(gt=0.0)] = 1.0   # loss weight of a patched image (clean: 1)
    lr: Annotated[float, Field(gt=0.0)] = 0.01
    lr_decay_epoch: PositiveInt | None = None   # x0.1 from this epoch on (the paper: epoch 3 of 6)
    momentum: Fraction = 0.9
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.0
    batch_size: PositiveInt = 32
    copies: PositiveInt = 2         # random placements per poisoned image
    clean: PositiveInt | None = None  # clean training images kept (None: all of the training split)
    # true: frozen-prefix features computed once per (image, placement) and reused every epoch (CPU);
    # false: new placements every epoch, full forward (GPU scale)
    cache_features: bool = True
    seed: Annotated[int, Field(ge=0)] = 0


class TrojanConfig(_Section):
    """`spade-study trojan` config."""

    model: ModelSettings = ModelSettings()
    data: DataSettings
    triggers: Annotated[list[TriggerSettings], Field(min_length=1, max_length=16)]
    patch: PatchSettings = PatchSettings()
    train: TrainSettings = TrainSettings()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (stored in the trigger manifest)."""
        return self.model_dump(mode="json")


class SpadeSettings(_Section):
    """[spade]: the per-sample SPADE trace."""

    solver: Literal["sparsegpt", "obc", "magnitude"] = "sparsegpt"
    sparsity: Fraction | str | dict[str, Fraction] = "default"
    augmentations: PositiveInt = 64     # the paper: 1024; kept low on a CPU
    batch_size: PositiveInt | None = None
    seed: Annotated[int, Field(ge=0)] = 0

    @field_validator("sparsity")
    @classmethod
    def _known_schedule(cls, value: Any) -> Any:
        from spade.schedules import check_named

        return check_named(value)


class MethodSettings(_Section):
    """[methods]: which saliency methods and their cost knobs."""

    names: list[str] | None = None      # None: the paper's 10
    baselines: list[str] = ["random", "centre", "edge"]
    gradcam_layer: str = "_blocks.15"   # GuidedGradCam's layer (module name)
    reduce: Literal["abs_sum", "sum"] = "abs_sum"   # attribution (C x H x W) -> map (H x W)
    ig_steps: PositiveInt = 16
    shap_samples: PositiveInt = 8
    lime_samples: PositiveInt = 64
    lime_cell: PositiveInt = 16         # LIME features: square cells of this side
    occlusion_window: PositiveInt = 32
    occlusion_stride: PositiveInt = 16
    batch_size: PositiveInt = 32        # perturbed inputs per forward pass


class SamplesSettings(_Section):
    """[samples]: how many test samples."""

    trojan: PositiveInt = 10            # patched held-out images that flip to the Trojan class
    clean: Annotated[int, Field(ge=0)] = 5   # clean correctly classified held-out images (insertion/deletion)
    insertion_steps: PositiveInt = 16
    pointing_tolerance: Annotated[int, Field(ge=0)] = 0   # pixels
    bootstrap: PositiveInt = 2000
    seed: Annotated[int, Field(ge=0)] = 0


class SaliencyConfig(_Section):
    """`spade-study saliency` config."""

    model_dir: str | None = None        # the `spade-study trojan` output (or --model)
    samples: SamplesSettings = SamplesSettings()
    spade: SpadeSettings = SpadeSettings()
    methods: MethodSettings = MethodSettings()

    _paths = field_validator("model_dir")(_resolve)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return self.model_dump(mode="json")


def _one_line(exc: ValidationError, source: str, root: type[BaseModel]) -> str:
    """The most telling validation error as `SOURCE: [section] key: message`."""
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    loc = [str(p) for p in err["loc"] if not isinstance(p, int)][:2]
    sections = {n: f.annotation for n, f in root.model_fields.items()}
    if err["type"] == "extra_forbidden":
        key = loc[-1]
        section = sections.get(loc[0]) if len(loc) == 2 else None
        fields = getattr(section, "model_fields", None)
        if fields is None and len(loc) == 2 and loc[0] == "triggers":
            fields = TriggerSettings.model_fields
        known = list(fields) if fields else list(sections)
        near = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        scope = f"key {key!r} in [{loc[0]}]" if len(loc) == 2 else f"key {key!r}"
        return f"{source}: unknown {scope} (known: {', '.join(known)}){hint}"
    where = f"[{loc[0]}] {loc[1]}" if len(loc) == 2 else f"[{loc[0]}]" if loc else "config"
    if err["type"] == "missing":
        return f"{source}: {where} is required"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{source}: {where}: {msg} (got {err.get('input')!r})"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SaliencyError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SaliencyError(f"{path}: cannot read the config ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SaliencyError(f"{path}: not valid TOML ({exc})") from None


def _validate(cls: type[BaseModel], data: dict[str, Any], base: str | Path | None, source: str) -> Any:
    try:
        return cls.model_validate(data, context={"base": base})
    except ValidationError as exc:
        raise SaliencyError(_one_line(exc, source, cls)) from None


def trojan_config(data: dict[str, Any], base: str | Path | None = None, source: str = "config") -> TrojanConfig:
    """Validate a Trojan config given as a dict (TOML layout)."""
    return _validate(TrojanConfig, data, base, source)


def saliency_config(data: dict[str, Any], base: str | Path | None = None, source: str = "config") -> SaliencyConfig:
    """Validate a saliency-benchmark config given as a dict (TOML layout)."""
    return _validate(SaliencyConfig, data, base, source)


def load_trojan_config(path: str | Path) -> TrojanConfig:
    """Read and validate a Trojan TOML config."""
    path = Path(path)
    return trojan_config(_read_toml(path), base=path.resolve().parent, source=str(path))


def load_saliency_config(path: str | Path) -> SaliencyConfig:
    """Read and validate a saliency-benchmark TOML config."""
    path = Path(path)
    return saliency_config(_read_toml(path), base=path.resolve().parent, source=str(path))
