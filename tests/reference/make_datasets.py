"""Write the datasets of the lme4 cross-check (run once; their CSVs are committed beside this script).

    .venv/bin/python tests/reference/make_datasets.py && Rscript tests/reference/glmer_reference.R

- paper: the 746 ratings of `analysis.examples.paper_responses()` (catch trials left out);
- planner_k2: 24 raters x 31 tasks from the study's planner (100 images, 2 ratings per task), the paper's
  rates, rater and item SD 0.5;
- paper_like: the paper fixture's design (about 3.5 ratings per task) with new answers: the paper's
  rates, rater and item SD 0.5, task SD 1.0, item x condition SD 0.5;
- strong_raters: the planner's design as in planner_k2, rater SD 1.0.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from analysis.examples import paper_responses  # noqa: E402
from analysis.io import add_outcomes, validate_responses  # noqa: E402
from analysis.power import RaterModel, simulate_responses  # noqa: E402
from study.assignment import simulate_assignments  # noqa: E402

HERE = Path(__file__).resolve().parent
COLUMNS = ["rater_id", "task_id", "item_id", "condition", "target", "spade", "decided", "correct_region"]


def main() -> None:
    """Build the four datasets and write them as reference_<name>.csv."""
    fixture = paper_responses()
    fixture = fixture[fixture["is_catch"] == "0"]
    plan = simulate_assignments(n_raters=24, tasks_per_rater=31, n_items=100, ratings_per_task=2, seed=12)
    design = fixture[["rater_id", "task_id", "item_id", "condition", "target", "correct"]].to_dict("records")
    datasets = {
        "paper": fixture,
        "planner_k2": simulate_responses(plan, RaterModel(), np.random.default_rng(121)),
        "paper_like": simulate_responses(design, RaterModel(task_sd=1.0, item_condition_sd=0.5),
                                         np.random.default_rng(122)),
        "strong_raters": simulate_responses(plan, RaterModel(rater_sd=1.0), np.random.default_rng(123)),
    }
    for name, raw in datasets.items():
        df = add_outcomes(validate_responses(raw.reset_index(drop=True)))
        df[COLUMNS].to_csv(HERE / f"reference_{name}.csv", index=False, lineterminator="\n")
        print(name, len(df), "ratings,", df["task_id"].nunique(), "tasks")


if __name__ == "__main__":
    main()
