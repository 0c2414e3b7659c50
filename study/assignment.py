"""THE assignment policy: which task a rater sees next.

A pure function, `choose_next`, used both inside the database transaction
(`study.db`, under `BEGIN IMMEDIATE`) and by the in-memory simulator
`simulate_assignments` that the power analysis uses, so that planned and served
studies follow the same rules:

- a task is (item, condition dense|spade, target true|predicted): 4 per item;
- a rater never sees two tasks of the same image (also a UNIQUE constraint in the DB);
- least-rated first, with a target of k ratings per task: a task below k always
  wins over a task at or above k, when the rater may take it; among tasks below k,
  the condition and the images with the most tasks still below k go first, so the
  last under-covered tasks stay takeable by the raters who come next;
- conditions balanced within a rater: at the end |dense - spade| <= 1, and at no
  point more than `max_running_imbalance` apart; inside that band the rater's
  lesser condition is preferred among tasks of the same coverage level;
- random order (seeded per rater and position, so a replay gives the same picks);
- the side on which the correct region is shown (A or B) alternates at random
  while staying balanced within the rater;
- catch trials at random positions: the visualization is replaced by the crop of
  the correct region, so the answer is obvious. They use an image the rater has
  not seen, the one whose tasks need ratings least, and do not count toward coverage.

The scheduler is written by hand because the constraints (coverage target, per-rater
balance, one image per rater, catch trials) are specific to this study design; no
experiment-design library implements this online, per-request assignment.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from contracts.manifest import CONDITIONS, TARGETS
from study.config import StudyConfig

SIDES = ("A", "B")


@dataclass(frozen=True)
class Task:
    """One rateable unit: an item's visualization in one condition for one target class."""

    task_id: str
    item_id: str
    condition: str
    target: str
    is_catch: bool = False


def task_id_for(item_id: str, condition: str, target: str, is_catch: bool = False) -> str:
    """Return the stable id of a task, e.g. `n01440764_0/spade/true` (catch tasks end in `/catch`)."""
    return f"{item_id}/{condition}/{target}" + ("/catch" if is_catch else "")


def tasks_for_items(item_ids: Iterable[str]) -> list[Task]:
    """Return every task of these items: 4 main tasks and 4 catch tasks per item.

    Catch tasks carry a nominal condition so that every exported row has one; the
    visualization of a catch trial is replaced by the crop of the correct region.
    """
    out: list[Task] = []
    for item in item_ids:
        for is_catch in (False, True):
            for cond in CONDITIONS:
                for target in TARGETS:
                    out.append(Task(task_id_for(item, cond, target, is_catch), item, cond, target, is_catch))
    return out


@dataclass(frozen=True)
class Policy:
    """The numbers the policy works with (from the study config)."""

    tasks_per_rater: int = 31
    catch_per_rater: int = 3
    ratings_per_task: int = 2
    max_running_imbalance: int = 2
    seed: int = 0

    @property
    def total(self) -> int:
        """Assignments per rater, catch trials included."""
        return self.tasks_per_rater + self.catch_per_rater

    @classmethod
    def from_config(cls, cfg: StudyConfig) -> "Policy":
        """Build the policy from the study config."""
        return cls(cfg.tasks_per_rater, cfg.catch_per_rater, cfg.ratings_per_task, seed=cfg.seed)


@dataclass
class RaterHistory:
    """What the policy needs to know about one rater's past assignments."""

    rater_key: str
    items_seen: set[str] = field(default_factory=set)
    main_by_condition: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CONDITIONS})
    n_catch: int = 0
    correct_sides: dict[str, int] = field(default_factory=lambda: {s: 0 for s in SIDES})

    @property
    def n_main(self) -> int:
        """Main (non-catch) assignments so far."""
        return sum(self.main_by_condition.values())

    @property
    def position(self) -> int:
        """0-based position of the next assignment."""
        return self.n_main + self.n_catch

    def record(self, task: Task, correct: str) -> None:
        """Account for one more assignment."""
        self.items_seen.add(task.item_id)
        if task.is_catch:
            self.n_catch += 1
        else:
            self.main_by_condition[task.condition] += 1
        self.correct_sides[correct] += 1


@dataclass(frozen=True)
class Pick:
    """The policy's decision: a task, where it sits in the rater's sequence, and its A/B layout."""

    task: Task
    position: int
    correct: str  # "A" or "B": the side showing the target's region
    a_target: str  # "true" or "predicted": whose region is labelled A


def other_target(target: str) -> str:
    """Return the other of the two targets."""
    return TARGETS[1] if target == TARGETS[0] else TARGETS[0]


def catch_positions(rater_key: str, policy: Policy) -> frozenset[int]:
    """Return the positions of a rater's catch trials (never the very first task)."""
    if policy.catch_per_rater <= 0:
        return frozenset()
    rng = random.Random(f"{policy.seed}:{rater_key}:catch")
    return frozenset(rng.sample(range(1, policy.total), policy.catch_per_rater))


def allowed_conditions(history: RaterHistory, policy: Policy) -> list[str]:
    """Return the conditions the rater may take next without breaking the balance rule."""
    remaining = policy.tasks_per_rater - history.n_main
    # After this pick `remaining - 1` picks are left, each able to shrink the imbalance by one;
    # an odd task count must end 1 apart, an even one level.
    bound = min(policy.max_running_imbalance, remaining - 1 + policy.tasks_per_rater % 2)
    out = []
    for cond in CONDITIONS:
        counts = dict(history.main_by_condition)
        counts[cond] += 1
        if abs(counts[CONDITIONS[0]] - counts[CONDITIONS[1]]) <= bound:
            out.append(cond)
    return out


def _choose_side(history: RaterHistory, rng: random.Random) -> str:
    a, b = history.correct_sides["A"], history.correct_sides["B"]
    if a != b:
        return "A" if a < b else "B"
    return rng.choice(SIDES)


def _pick_main(
    main_tasks: Sequence[Task], counts: Mapping[str, int], history: RaterHistory, policy: Policy, rng: random.Random
) -> Task | None:
    allowed = allowed_conditions(history, policy)
    k = policy.ratings_per_task
    # Ratings still missing to reach k, per condition and per image: draining both conditions evenly
    # and the neediest images first keeps the last under-covered tasks takeable by the raters to come
    # (a rater takes one task per image, so tasks left on one image strand).
    deficit_cond: dict[str, int] = {c: 0 for c in CONDITIONS}
    deficit_item: dict[str, int] = {}
    get = counts.get
    for t in main_tasks:
        c = get(t.task_id, 0)
        if c < k:
            deficit_cond[t.condition] += k - c
            deficit_item[t.item_id] = deficit_item.get(t.item_id, 0) + k - c
    seen = history.items_seen
    by_cond = history.main_by_condition
    best: list[Task] = []
    best_key = None
    for t in main_tasks:
        if t.item_id in seen or t.condition not in allowed:
            continue
        c = get(t.task_id, 0)
        key = (
            c if c < k else k,  # below k first
            by_cond[t.condition],  # the rater's lesser condition
            -deficit_cond[t.condition],
            -deficit_item.get(t.item_id, 0),
            c,  # least-rated, also beyond k
        )
        if best_key is None or key < best_key:
            best, best_key = [t], key
        elif key == best_key:
            best.append(t)
    return rng.choice(best) if best else None  # random order among equals


def _pick_catch(
    catch_tasks: Sequence[Task], main_tasks: Sequence[Task], counts: Mapping[str, int], history: RaterHistory, rng: random.Random
) -> Task | None:
    # The item whose main tasks are already best covered costs the coverage least.
    need: dict[str, int] = {}
    for t in main_tasks:
        c = counts.get(t.task_id, 0)
        need[t.item_id] = min(need.get(t.item_id, c), c)
    candidates = [t for t in catch_tasks if t.item_id not in history.items_seen]
    if not candidates:
        return None
    return max(candidates, key=lambda t: (need.get(t.item_id, 0), rng.random()))


def choose_next(
    main_tasks: Sequence[Task],
    catch_tasks: Sequence[Task],
    counts: Mapping[str, int],
    history: RaterHistory,
    policy: Policy,
) -> Pick | None:
    """Pick the rater's next task given the current coverage counts of the main tasks; None when the rater is done.

    `counts` maps a main task id to the number of ratings it has or is about to get
    (answered plus recently shown assignments).
    """
    pos = history.position
    if pos >= policy.total:
        return None
    rng = random.Random(f"{policy.seed}:{history.rater_key}:{pos}")
    main_left = policy.tasks_per_rater - history.n_main
    catch_left = policy.catch_per_rater - history.n_catch
    want_catch = catch_left > 0 and (pos in catch_positions(history.rater_key, policy) or main_left <= 0)
    task = None
    if want_catch:
        task = _pick_catch(catch_tasks, main_tasks, counts, history, rng)
    if task is None and main_left > 0:
        task = _pick_main(main_tasks, counts, history, policy, rng)
    if task is None:
        return None  # no image left that the rater has not seen
    correct = _choose_side(history, rng)
    a_target = task.target if correct == "A" else other_target(task.target)
    return Pick(task=task, position=pos, correct=correct, a_target=a_target)


def simulate_assignments(
    n_raters: int,
    tasks_per_rater: int,
    n_items: int,
    ratings_per_task: int = 2,
    catch_per_rater: int = 3,
    seed: int = 0,
) -> list[dict]:
    """Run the policy in memory for raters who come one after another; return one dict per assignment.

    Keys: rater_id, position, task_id, item_id, condition, target, is_catch (0|1),
    correct (A|B), a_target. The same keys (minus position/a_target) as the
    `responses_export` view, without the rater's choice and timestamps.
    """
    if n_items < 1 or n_raters < 0:
        raise ValueError("n_items must be >= 1 and n_raters >= 0")
    if tasks_per_rater + catch_per_rater > n_items:
        raise ValueError(
            f"tasks_per_rater + catch_per_rater = {tasks_per_rater + catch_per_rater} exceeds n_items = {n_items}: "
            "a rater never sees an image twice"
        )
    policy = Policy(tasks_per_rater, catch_per_rater, ratings_per_task, seed=seed)
    tasks = tasks_for_items(f"item{i:04d}" for i in range(n_items))
    main = [t for t in tasks if not t.is_catch]
    catch = [t for t in tasks if t.is_catch]
    counts = {t.task_id: 0 for t in main}
    rows: list[dict] = []
    for r in range(n_raters):
        rater_id = f"rater{r:04d}"
        history = RaterHistory(rater_key=rater_id)
        while (pick := choose_next(main, catch, counts, history, policy)) is not None:
            t = pick.task
            history.record(t, pick.correct)
            if not t.is_catch:
                counts[t.task_id] += 1
            rows.append(
                {
                    "rater_id": rater_id,
                    "position": pick.position,
                    "task_id": t.task_id,
                    "item_id": t.item_id,
                    "condition": t.condition,
                    "target": t.target,
                    "is_catch": int(t.is_catch),
                    "correct": pick.correct,
                    "a_target": pick.a_target,
                }
            )
    return rows
