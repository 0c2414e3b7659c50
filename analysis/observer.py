"""The machine observer beside the humans: its decision rate, agreement and net agreement per condition.

Reads the observer's results (`contracts.observer`, written by `spade-study observe BUNDLE`), never
torch. The machine's rates use the humans' definitions and intervals (`analysis.metrics`): one
answer per task, over every task of the bundle, and again over the tasks the humans rated. On those
rated tasks, `same_choice` is the share of human ratings, among those where both the rater and the
machine decided, in which both picked the same region.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from analysis.metrics import counts, differences, proportions, ratio, wilson
from contracts.observer import ObserverError, find_results, read_results
from contracts.responses import CONDITIONS

__all__ = ["ObserverError", "load_observer", "observer_summary", "observer_markdown", "observer_line"]


def load_observer(path: str | Path, responses: pd.DataFrame | None = None) -> dict[str, Any]:
    """Read the one observer results file that `path` names (CSV, `observer/` folder or bundle).

    With `responses`, refuse results that share no task with them (another bundle's results).
    Returns {"path", "rows", "meta"}; raises ObserverError with a one-line message.
    """
    found = find_results(path)
    if not found:
        raise ObserverError(f"{path}: no observer results here (run `spade-study observe BUNDLE` first)")
    if len(found) > 1:
        raise ObserverError(f"{path}: several observer results ({', '.join(p.name for p in found)}); pass one CSV")
    rows, meta = read_results(found[0])
    if responses is not None:
        rated = set(responses.loc[responses["is_catch"] == 0, "task_id"])
        if rated and not rated & {r["task_id"] for r in rows}:
            raise ObserverError(f"{found[0]}: no task in common with the responses (results of another bundle?)")
    return {"path": str(found[0]), "rows": rows, "meta": meta}


def _counts(frame: pd.DataFrame) -> dict[str, int]:
    # The machine's answers as the humans' outcome columns, so that `analysis.metrics` counts both alike.
    outcomes = pd.DataFrame({"decided": (frame["choice"] != "undecided").astype(int),
                             "correct_region": (frame["choice"] == "target").astype(int)}, index=frame.index)
    return counts(outcomes)


def observer_summary(observer: dict[str, Any], main: pd.DataFrame) -> dict[str, Any]:
    """The machine's metrics per condition (all tasks, rated tasks), SPADE - dense differences, and its match with the raters.

    `main`: the analysed (non-catch) human ratings with outcome columns (`analysis.io.add_outcomes`).
    """
    machine = pd.DataFrame(observer["rows"])
    rated_ids = set(main["task_id"])
    out: dict[str, Any] = {
        "name": observer["meta"].get("name"), "network": str(machine["network"].iloc[0]),
        "margin": observer["meta"].get("margin"), "file": observer["path"],
        "tasks": int(len(machine)), "rated_tasks_missing": int(len(rated_ids - set(machine["task_id"]))),
    }
    joined = main.merge(machine[["task_id", "choice"]].rename(columns={"choice": "machine"}), on="task_id", how="inner")
    for cond in CONDITIONS:
        every = machine[machine["condition"] == cond]
        rated = every[every["task_id"].isin(rated_ids)]
        c_all, c_rated = _counts(every), _counts(rated)
        both = joined[(joined["condition"] == cond) & (joined["decided"] == 1) & (joined["machine"] != "undecided")]
        same = int(((both["correct_region"] == 1) == (both["machine"] == "target")).sum())
        out[cond] = {
            **c_all, **proportions(c_all),
            "flagged_easy": int((every["flag"] == "easy").sum()),
            "flagged_impossible": int((every["flag"] == "impossible").sum()),
            "rated": {**c_rated, **proportions(c_rated)},
            "same_choice": {"ratings": int(len(both)), "same": same, "rate": ratio(same, int(len(both))),
                            "rate_ci": wilson(same, int(len(both)))},
        }
    out["difference"] = differences({c: out[c] for c in CONDITIONS})
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def observer_markdown(summary: dict[str, Any]) -> str:
    """The report's section: the humans' and the machine's rates per condition, side by side."""
    obs = summary["observer"]
    lines = [
        "## Machine observer",
        "",
        f"`{obs['network']}` (margin {obs['margin']}), from `{obs['file']}`: one answer per task, by cosine similarity "
        "of the visualization with each region's crop (see docs/observer.md). Rates in %; the machine's are over "
        "every task of the bundle and over the tasks the raters rated.",
        "",
        "| condition | who | tasks or ratings | decision rate | agreement | net agreement |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for cond in CONDITIONS:
        h, m = summary[cond], obs[cond]
        lines.append(f"| {cond} | humans | {h['n']} | {_pct(h['decision_rate'])} | {_pct(h['agreement'])} | {_pct(h['net'])} |")
        lines.append(f"| {cond} | machine, all tasks | {m['n']} | {_pct(m['decision_rate'])} | {_pct(m['agreement'])} | {_pct(m['net'])} |")
        r = m["rated"]
        lines.append(f"| {cond} | machine, rated tasks | {r['n']} | {_pct(r['decision_rate'])} | {_pct(r['agreement'])} | {_pct(r['net'])} |")
    lines += ["", "Same region as the rater, among ratings where both decided: "
              + "; ".join(f"{c} {obs[c]['same_choice']['same']}/{obs[c]['same_choice']['ratings']}" for c in CONDITIONS)
              + "."]
    if obs["rated_tasks_missing"]:
        lines.append(f"{obs['rated_tasks_missing']} rated task(s) have no machine answer (results of an older bundle?).")
    return "\n".join(lines) + "\n"


def observer_line(obs: dict[str, Any]) -> str:
    """One line for the terminal: the machine's decision rate and agreement per condition."""
    parts = [f"{c} decision rate {_pct(obs[c]['decision_rate'])}%, agreement {_pct(obs[c]['agreement'])}%"
             for c in CONDITIONS]
    return f"machine observer ({obs['network']}, all {obs['tasks']} tasks): " + "; ".join(parts) + " (report.md: beside the raters')"
