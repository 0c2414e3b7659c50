"""The responses contract: the study's `responses_export` view and its CSV, read by `analysis`.

One row per stored answer. `study` writes it (the view and the CSV download / `spade-study
export`); `analysis` reads and validates it; the data release documents it (`CODEBOOK`). A new
column raises `RESPONSES_VERSION`; the change is described in docs/study.md.
"""
from __future__ import annotations

RESPONSES_VERSION = 2  # 2: `speeder` column added (docs/study.md, "Versions of the responses CSV")
EXPORT_VIEW = "responses_export"

CONDITIONS: tuple[str, ...] = ("dense", "spade")
TARGETS: tuple[str, ...] = ("true", "predicted")
CHOICES: tuple[str, ...] = ("A", "B", "undecided")
SIDES: tuple[str, ...] = ("A", "B")

# column -> (type, allowed values or format, meaning): the codebook of the data release.
CODEBOOK: dict[str, tuple[str, str, str]] = {
    "rater_id": ("string", "non-empty", "the rater's pseudonymous id"),
    "task_id": ("string", "ITEM/CONDITION/TARGET", "one visualization shown with one image: item x condition x target"),
    "item_id": ("string", "non-empty", "the bundle item (one misclassified image)"),
    "condition": ("string", "|".join(CONDITIONS), "visualization of the dense model or of the SPADE trace"),
    "target": ("string", "|".join(TARGETS), "the class neuron visualized: the true or the predicted class"),
    "choice": ("string", "|".join(CHOICES), "the rater's answer; undecided is \"can't decide\""),
    "correct": ("string", "|".join(SIDES), "the side (letter shown to this rater) of the target class's Score-CAM region"),
    "is_catch": ("integer", "0|1", "1 for a catch trial (the visualization replaced by the correct region's crop)"),
    "shown_at": ("string", "ISO 8601 UTC", "when the task was shown"),
    "answered_at": ("string", "ISO 8601 UTC", "when the answer was stored"),
    "response_ms": ("number", ">= 0, finite; empty when unknown", "answered_at - shown_at in milliseconds"),
    "speeder": ("integer", "0|1", "1 when the answer came faster than the study's speeder threshold (config speeder_seconds)"),
}
COLUMNS: tuple[str, ...] = tuple(CODEBOOK)
