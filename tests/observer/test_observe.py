"""The observer with the real EfficientNet-Lite0 on real photos: hand-made stimuli, determinism, resume, the CLI."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from contracts.observer import read_results, results_dir
from observer.cli import main as observe_main
from observer.decision import flag
from observer.networks import embedding_key
from observer.runner import observe_bundle
from tests.observer.helpers import add_crop_files, manifest, show_region_as_visualization

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
KEY = embedding_key("efficientnet_lite0", None, None)


def observe(bundle: Path, embedder, **options) -> dict:
    """Run the observer with the session's embedder under the default embedding key."""
    return observe_bundle(bundle, lambda: embedder, KEY, "efficientnet_lite0", name="efficientnet_lite0",
                          progress=False, **options)


def choices(csv_path: Path) -> dict[str, str]:
    rows, _ = read_results(csv_path)
    return {r["task_id"]: r["choice"] for r in rows}


def test_a_visualization_that_is_a_region_crop_points_to_that_region(bundle_copy: Path, embedder) -> None:
    item = manifest(bundle_copy)["items"][0]
    # Each visualization replaced by one region's own crop: the answer is that region.
    shown = {("dense", "true"): "true", ("dense", "predicted"): "true",
             ("spade", "true"): "predicted", ("spade", "predicted"): "predicted"}
    for (cond, target), region in shown.items():
        show_region_as_visualization(bundle_copy, item, cond, target, region)
    report = observe(bundle_copy, embedder)
    rows = {r["task_id"]: r for r in read_results(report["csv"])[0]}
    for (cond, target), region in shown.items():
        row = rows[f"{item['id']}/{cond}/{target}"]
        assert row["choice"] == ("target" if region == target else "other"), row
        # The shown crop is the region's crop itself: similarity 1 up to resampling.
        assert (row["sim_target"] if region == target else row["sim_other"]) > 0.99
        assert abs(row["score"]) > 0.3


def test_the_same_answers_twice_and_with_the_bundle_s_crop_files(bundle_copy: Path, embedder) -> None:
    first = observe(bundle_copy, embedder)
    text = first["csv"].read_text()
    assert first["embedded_items"] == 2 and first["tasks"] == 8
    shutil.rmtree(results_dir(bundle_copy))
    again = observe(bundle_copy, embedder)
    assert again["embedded_items"] == 2 and again["csv"].read_text() == text
    # Crop files in the manifest (as `generate` writes them) change the items' hashes, not the answers.
    add_crop_files(bundle_copy)
    with_files = observe(bundle_copy, embedder)
    assert with_files["embedded_items"] == 2 and with_files["csv"].read_text() == text


class FailingAfter:
    """An embedder that counts its calls and fails on call number `fail_at` (a killed run)."""

    def __init__(self, inner, fail_at: int | None = None) -> None:
        self.inner, self.fail_at, self.calls = inner, fail_at, 0

    def embed(self, images):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return self.inner.embed(images)


def test_an_interrupted_run_resumes_and_flags_reuse_everything(bundle_copy: Path, embedder, capsys) -> None:
    broken = FailingAfter(embedder, fail_at=2)
    with pytest.raises(KeyboardInterrupt):
        observe_bundle(bundle_copy, lambda: broken, KEY, "efficientnet_lite0", name="efficientnet_lite0",
                       batch_items=1, progress=False)
    assert not (results_dir(bundle_copy) / "efficientnet_lite0.csv").exists()
    assert (results_dir(bundle_copy) / ".work" / "efficientnet_lite0.json").is_file()
    counting = FailingAfter(embedder)
    report = observe_bundle(bundle_copy, lambda: counting, KEY, "efficientnet_lite0", name="efficientnet_lite0",
                            batch_items=1, progress=False)
    assert (counting.calls, report["embedded_items"], report["reused_items"]) == (1, 1, 1)
    assert not (results_dir(bundle_copy) / ".work").exists()
    resumed = report["csv"].read_text()
    # The post-step `observe --flag` embeds nothing: the results' similarities are reused.
    assert observe_main([str(bundle_copy), "--flag", "--easy-gap", "0.01", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "0 item(s) embedded, 2 reused" in out
    rows, meta = read_results(report["csv"])
    assert meta["flags"] == {"easy_gap": 0.01, "same_regions": 0.9}
    assert [r["flag"] for r in rows] == [flag(r["score"], r["sim_regions"], 0.01, 0.9) for r in rows]
    assert "easy" in {r["flag"] for r in rows}  # the low threshold flags something: the check can fail
    assert f"flagged {sum(r['flag'] == 'easy' for r in rows)} task(s) easy" in out
    # A fresh run from nothing gives the resumed run's answers.
    shutil.rmtree(results_dir(bundle_copy))
    assert observe(bundle_copy, embedder)["csv"].read_text() == resumed
