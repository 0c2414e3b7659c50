"""The recorded CPU benchmark (bench/results/) and the numbers bench/README.md quotes from it.

Running the embedded default (EfficientNet-Lite0, 10 Trojan samples, SPADE per sample) takes about
half an hour on the shared CPU, so the test reads the recorded tables instead of recomputing them.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"


@pytest.mark.parametrize("method", ["Saliency", "InputXGradient"])
def test_recorded_gradient_result_has_10_samples_and_is_quoted(method: str) -> None:
    df = pd.read_csv(RESULTS / "saliency-gradients-table1.csv")
    row = df[df.method == method].iloc[0]
    assert row.auroc_n >= 10
    assert row.auroc_diff_lo <= row.auroc_diff <= row.auroc_diff_hi
    readme = (REPO / "bench" / "README.md").read_text(encoding="utf-8")
    # the README states the measured SPADE - dense gap of each method, whatever its sign
    assert f"{row.auroc_dense_mean:.2f}" in readme and f"{row.auroc_spade_mean:.2f}" in readme
    assert f"{row.auroc_diff:+.2f}" in readme


def test_recorded_trojan_model_meets_what_the_readme_says() -> None:
    import json

    m = json.loads((RESULTS / "trojan-cpu-metrics.json").read_text(encoding="utf-8"))
    readme = (REPO / "bench" / "README.md").read_text(encoding="utf-8")
    assert f"{100 * m['attack_success_rate']:.1f}%" in readme
    assert f"{100 * m['clean_top1_change']:+.1f} points" in readme
