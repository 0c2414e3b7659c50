"""A tiny Trojan model built here: planting, every method on dense and SPADE, records, tables, resume."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from saliency.benchmark import CONDITIONS, run_benchmark, score_sample, select_samples, Sample
from saliency.methods import PAPER_METHODS, coverage_table
from saliency.tables import write_tables
from saliency.trojan import load_trojan
from tests.saliency.helpers import state_copy, tiny_model, tiny_saliency_config

pytestmark = pytest.mark.slow


def test_planting_writes_a_manifest_and_a_working_trojan(tiny_trojan) -> None:
    m = tiny_trojan["manifest"]
    d: Path = tiny_trojan["dir"]
    assert (d / "model.pt").is_file() and (d / "trojan.json").is_file()
    assert [t["target"] for t in m["triggers"]] == [3, 7]
    assert all((d / t["picture"]).is_file() for t in m["triggers"])
    assert m["application"]["noise_std"] > 0 and m["application"]["location"].startswith("uniform")
    metrics = m["metrics"]
    assert metrics["attack_success_rate"] >= 0.8 > metrics["attack_success_rate_before"]
    assert json.loads((d / "trojan.json").read_text())["metrics"] == metrics


def test_planting_resumes_and_refuses_another_config(tiny_trojan, tmp_path) -> None:
    from saliency.errors import SaliencyError
    from saliency.trojan import plant
    from tests.saliency.helpers import TINY_PREPROCESS, tiny_trojan_config

    d: Path = tiny_trojan["dir"]
    images = tiny_trojan["images"]
    again = plant(tiny_trojan_config(tiny_trojan["root"] / "images"), d, progress=False, model=tiny_model(),
                  preprocess=TINY_PREPROCESS, images=images)
    assert again["metrics"] == tiny_trojan["manifest"]["metrics"]  # every stage came from .work
    with pytest.raises(SaliencyError, match="another config"):
        plant(tiny_trojan_config(tiny_trojan["root"] / "images", copies=1), d, progress=False, model=tiny_model(),
              preprocess=TINY_PREPROCESS, images=images)
    # other fine-tuning settings: training restarts, the cached inputs are kept
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(d, copy)
    stamps = {p: p.stat().st_mtime_ns for p in (copy / ".work" / "features").iterdir()}
    short = plant(tiny_trojan_config(tiny_trojan["root"] / "images", epochs=2), copy, progress=False,
                  model=tiny_model(), preprocess=TINY_PREPROCESS, images=images)
    assert len(short["train"]["losses"]) == 2
    assert {p: p.stat().st_mtime_ns for p in (copy / ".work" / "features").iterdir()} == stamps


def test_every_method_runs_on_dense_and_trace_without_changing_the_model(tiny_trojan) -> None:
    tm = load_trojan(tiny_trojan["dir"], model=tiny_model())
    before = state_copy(tm.model)
    config = tiny_saliency_config()
    names = list(PAPER_METHODS)
    coverage = coverage_table(tm.model, names)
    assert all(c["status"] == "ok" for c in coverage.values()), coverage
    ex, h = tm.heldout("heldout_patched")[0]
    sample = Sample("trojan-000", "trojan", 0, ex, tm.target(ex.trigger))
    rec = score_sample(tm, sample, config, names, coverage, torch.device("cpu"))
    for name in names:
        for cond in CONDITIONS:
            e = rec["scores"][name][cond]
            assert e["status"] == "ok", (name, cond, e)
            assert 0.0 <= e["auroc"] <= 1.0 and isinstance(e["pointing"], bool)
    for name in ("random", "centre", "edge"):
        assert rec["scores"][name]["dense"]["status"] == "ok"
    after = tm.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(m._forward_hooks or m._backward_hooks or hasattr(m, "rule") for m in tm.model.modules())
    # SPADE pruned the copy, not the model: the dense and SPADE maps differ
    assert rec["scores"]["Saliency"]["dense"]["auroc"] != rec["scores"]["Saliency"]["spade"]["auroc"]


def test_benchmark_records_tables_and_resume(tiny_trojan, tmp_path) -> None:
    config = tiny_saliency_config(trojan=2, clean=1)
    config = config.model_copy(update={"methods": config.methods.model_copy(
        update={"names": ["Saliency", "InputXGradient"]})})
    out = tmp_path / "run"
    recs = run_benchmark(config, tiny_trojan["dir"], out, shard=None, progress=False, model=tiny_model())
    tm = load_trojan(tiny_trojan["dir"], model=tiny_model())
    samples = select_samples(tm, config)
    assert len(recs) == len(samples) >= 2
    assert sorted(p.stem for p in (out / "records").glob("*.json")) == sorted(s.id for s in samples)
    for s in samples:
        if s.kind == "trojan":  # the samples flip to their Trojan class
            assert s.target in (3, 7) and s.example.trigger is not None
    paths = write_tables([out], out)
    t1 = (out / "table1.md").read_text()
    assert "Saliency" in t1 and "Average" in t1 and "random" in t1 and "95%" in t1
    assert (out / "table1.tex").read_text().startswith("\\begin{table}")
    if any(s.kind == "clean" for s in samples):
        assert "Insertion" in (out / "table2.md").read_text()
    # resume: nothing is recomputed (the record files are not rewritten)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    run_benchmark(config, tiny_trojan["dir"], out, progress=False, model=tiny_model())
    assert {p: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")} == stamps
    assert paths[-1].name == "timing.csv"
