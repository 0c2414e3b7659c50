"""Simulated raters who answer a study through the app's own code path (`study.service`).

The rater model looks at the stimuli, not at the answer key: it starts from the machine
observer (`spade-study observe`, docs/observer.md), which compares the visualization with the
two region crops in the network's feature space (EfficientNet-Lite0's penultimate layer, cosine
similarity), and leans toward the region that looks more like the visualization. Each rater has a seeded sensitivity (how sharply the
similarity gap turns into a choice) and a seeded indecision threshold (a gap below
it gives "Can't decide"). A SPADE visualization that resembles its region more
than the dense one does therefore earns more decisions and more agreement, as the
paper's human raters did.

    python bench/simulated_raters.py BUNDLE --db STUDY.db --raters 24 [--config STUDY.toml] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from observer.decision import decide  # noqa: E402


def stimulus_similarities(bundle: Path, model_name: str = "efficientnet_lite0", weights: str | None = None) -> dict:
    """For every item, condition and target: the observer's cosine similarity of the visualization with each region's crop.

    Runs the machine observer (`observer.runner`) under the results name `spade-study observe` gives
    this network, so that its results in BUNDLE/observer/ are reused (their margin and flags kept)
    and the raters and the observer see the same numbers.
    """
    from contracts.observer import read_results, results_paths
    from observer.cli import default_name
    from observer.decision import DEFAULT_MARGIN
    from observer.embedding import Embedder
    from observer.networks import embedding_key, network_label
    from observer.runner import observe_bundle, other

    name = default_name(model_name, None)
    margin, flags = DEFAULT_MARGIN, None
    meta_path = results_paths(bundle, name)[1]
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            margin, flags = float(meta.get("margin", DEFAULT_MARGIN)), meta.get("flags")
        except (ValueError, TypeError, AttributeError):
            pass  # an unreadable meta only means the observer's defaults
    report = observe_bundle(bundle, lambda: Embedder(model_name, weights), embedding_key(model_name, weights, None),
                            network_label(model_name, None), name=name, margin=margin, flags=flags)
    rows, _ = read_results(report["csv"])
    sims: dict = {}
    for r in rows:
        entry = sims.setdefault(r["item_id"], {})
        t, o = r["target"], other(r["target"])
        entry[(r["condition"], t)] = {t: r["sim_target"], o: r["sim_other"]}
        # A catch trial shows the correct region's own crop: similarity 1 with it, sim_regions with the other.
        entry[("catch", t)] = {t: 1.0, o: r["sim_regions"]}
    return sims


class RaterModel:
    """One simulated rater: seeded sensitivity and indecision threshold over standardized similarity gaps."""

    def __init__(self, seed: int, scale: float) -> None:
        self.rng = random.Random(seed)
        self.sensitivity = self.rng.uniform(1.5, 4.0)
        self.threshold = self.rng.uniform(0.1, 0.5)
        self.scale = scale

    def choose(self, similarity: dict[str, float], a_region: str) -> str:
        """Return "A", "B" or "undecided" for one task, given which region is shown as A.

        The observer's decision rule (`observer.decision.decide`) with this rater's margin says
        whether the rater decides; a decided rater then errs with a logistic chance in the gap.
        """
        b_region = "predicted" if a_region == "true" else "true"
        decision = decide(similarity[a_region], similarity[b_region], margin=self.threshold * self.scale)
        if decision.choice == "undecided":
            return "undecided"
        p_a = 1.0 / (1.0 + math.exp(-self.sensitivity * decision.score / self.scale))
        return "A" if self.rng.random() < p_a else "B"


def run_raters(bundle: Path, db: Path, n_raters: int, config: Path | None, seed: int, sims: dict) -> dict:
    """Drive `n_raters` invited raters from consent to completion through `study.service`; return counts."""
    from study.config import load_config, with_overrides
    from study.invites import create_invites
    from study.service import StudyService

    # Simulated raters answer at machine speed: the minimum viewing time (for people) would refuse them.
    cfg = with_overrides(load_config(config), min_view_seconds=0)
    svc = StudyService(db, bundle, cfg)
    gaps = [s[("dense", t)][t] - s[("dense", t)]["predicted" if t == "true" else "true"]
            for s in sims.values() for t in ("true", "predicted")]
    gaps += [s[("spade", t)][t] - s[("spade", t)]["predicted" if t == "true" else "true"]
             for s in sims.values() for t in ("true", "predicted")]
    scale = float(np.std(gaps)) or 1.0
    invites = create_invites(db, n_raters, "http://localhost:8501/")
    answered = 0
    for index, invite in enumerate(tqdm(invites, desc="simulated raters", unit="rater")):
        params = {"token": invite.token}
        rater = svc.consent(params)
        svc.finish_instructions(rater.rater_id)
        # Practice: the simulated raters know the practice answers (it only gates the main tasks).
        while svc.rater(rater.rater_id).stage == "practice":
            state = svc.practice_state(rater.rater_id)
            trial = svc.practice_trial(state)
            svc.submit_practice(rater.rater_id, state.round, state.trial, trial.correct)
        model = RaterModel(seed * 100_003 + index, scale)
        while (task := svc.next_task(rater.rater_id)) is not None:
            condition = "catch" if task.is_catch else task.condition
            choice = model.choose(sims[task.item_id][(condition, task.target)], task.a_target)
            svc.submit(rater.rater_id, task.assignment_id, choice, task.nonce)
            answered += 1
    return {"raters": n_raters, "responses": answered, "similarity_gap_sd": scale}


def main(argv: list[str] | None = None) -> int:
    """Command line: simulate raters on a bundle into a study DB."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--raters", type=int, default=24)
    p.add_argument("--config", type=Path, default=None, help="study config (tasks per rater, k, catch trials)")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--weights", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    sims = stimulus_similarities(args.bundle, args.model, args.weights)
    t1 = time.perf_counter()
    counts = run_raters(args.bundle, args.db, args.raters, args.config, args.seed, sims)
    counts.update(stimulus_seconds=round(t1 - t0, 1), rating_seconds=round(time.perf_counter() - t1, 1))
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
