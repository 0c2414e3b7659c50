"""The admin page's plots, computed from the live database: progress over time, the rates per
condition with 95% Wilson intervals, and the participant flow.

Rates follow `study.stats` (the paper's definitions): the decision rate is the share of answers
other than "Can't decide", agreement is `choice == correct` among decided answers, and net
agreement is agreeing answers among all answers. Main tasks only (no catch trials), withdrawn
raters left out (the responses_export view already leaves them out).
"""
from __future__ import annotations

import io
import sqlite3
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the server has no display
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from statsmodels.stats.proportion import proportion_confint  # noqa: E402

from contracts.manifest import CONDITIONS  # noqa: E402

COLOURS = {"dense": "#1f5fbf", "spade": "#b34700"}  # both >= 4.5:1 on white, told apart by hue and marker too
MARKERS = {"dense": "o", "spade": "s"}


def _connect(db_path: str | Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True, timeout=15)


def wilson(successes: int, n: int) -> tuple[float | None, float | None, float | None]:
    """(proportion, low, high) with the 95% Wilson interval; Nones when n is 0."""
    if n == 0:
        return None, None, None
    lo, hi = proportion_confint(successes, n, alpha=0.05, method="wilson")
    return successes / n, float(lo), float(hi)


def condition_rates(db_path: str | Path) -> list[dict]:
    """Per condition: answers, decided, agreeing, and each rate with its Wilson interval."""
    with _connect(db_path) as conn:
        rows = conn.execute(
            """SELECT condition, COUNT(*), COALESCE(SUM(choice != 'undecided'), 0),
                      COALESCE(SUM(choice != 'undecided' AND choice = correct), 0)
               FROM responses_export WHERE is_catch = 0 GROUP BY condition"""
        ).fetchall()
    found = {c: (n, d, a) for c, n, d, a in rows}
    out = []
    for cond in CONDITIONS:
        n, decided, agree = found.get(cond, (0, 0, 0))
        out.append({
            "condition": cond, "answers": n, "decided": decided, "agree": agree,
            "decision_rate": wilson(decided, n), "agreement": wilson(agree, decided), "net_agreement": wilson(agree, n),
        })  # fmt: skip
    return out


def progress_series(db_path: str | Path) -> list[tuple[datetime, int]]:
    """(time, main-task answers so far) after every stored answer to a main task (catch trials left out)."""
    with _connect(db_path) as conn:
        times = [r[0] for r in conn.execute("SELECT answered_at FROM responses_export WHERE is_catch = 0 ORDER BY answered_at")]
    return [(datetime.fromisoformat(t.replace("Z", "+00:00")), i + 1) for i, t in enumerate(times)]


def participant_flow(db_path: str | Path, excluded: int | None = None) -> list[tuple[str, int]]:
    """Raters at each step: invited or enrolled, consented, practice passed, completed, and (given as
    `excluded`, from the declared exclusion rules) how many the rules exclude."""
    with _connect(db_path) as conn:
        cols = {r[1] for r in conn.execute("PRAGMA table_info(raters)")}
        # A withdrawn rater leaves the flow from the step they were at (the column exists once withdrawal does).
        kept = "withdrawn_at IS NULL" if "withdrawn_at" in cols else "1"
        invited, consented, passed, completed = conn.execute(
            f"""SELECT COUNT(*), COALESCE(SUM(consented_at IS NOT NULL AND {kept}), 0),
                       COALESCE(SUM(practice_passed = 1 AND {kept}), 0), COALESCE(SUM(completed_at IS NOT NULL AND {kept}), 0)
                FROM raters"""
        ).fetchone()
    flow = [("invited or enrolled", invited), ("consented", consented), ("practice passed", passed), ("completed", completed)]
    if excluded is not None:
        flow.append(("excluded by the declared rules", excluded))
    return flow


def progress_figure(series: list[tuple[datetime, int]], target: int | None = None) -> Figure:
    """Main-task answers stored over time (a step line), with the target (k x tasks) as a dashed line."""
    fig, ax = plt.subplots(figsize=(6.4, 2.8), dpi=100, layout="constrained")
    if series:
        ax.step([t for t, _ in series], [n for _, n in series], where="post", color="#1f2029")
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    else:
        ax.text(0.5, 0.5, "no answers yet", ha="center", va="center", transform=ax.transAxes)
    if target:
        ax.axhline(target, ls="--", color="#5c5f6b", lw=1)
        ax.annotate(f"target {target}", (0, target), xycoords=("axes fraction", "data"), va="bottom", fontsize=8)
    ax.set_ylabel("main-task answers")
    ax.set_title("Progress over time (UTC)", fontsize=10)
    return fig


def rates_figure(rates: list[dict]) -> Figure:
    """Decision rate, agreement and net agreement per condition: points with 95% Wilson intervals."""
    fig, ax = plt.subplots(figsize=(6.4, 2.8), dpi=100, layout="constrained")
    metrics = [("decision_rate", "decision rate"), ("agreement", "agreement\n(among decided)"), ("net_agreement", "net agreement")]
    for j, row in enumerate(rates):
        offset = (j - (len(rates) - 1) / 2) * 0.18
        for i, (key, _) in enumerate(metrics):
            p, lo, hi = row[key]
            if p is None:
                continue
            ax.errorbar([i + offset], [p], yerr=[[max(0.0, p - lo)], [max(0.0, hi - p)]], fmt=MARKERS.get(row["condition"], "o"),
                        color=COLOURS.get(row["condition"], "black"), capsize=3,
                        label=f"{row['condition']} (n = {row['answers']})" if i == 0 else None)
    ax.set_xticks(range(len(metrics)), [label for _, label in metrics], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_xlim(-0.5, len(metrics) - 0.5)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Rates per condition, 95% Wilson intervals", fontsize=10)
    if any(r["answers"] for r in rates):
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def flow_figure(flow: list[tuple[str, int]]) -> Figure:
    """The participant flow as horizontal bars, first step at the top."""
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(flow) + 0.8), dpi=100, layout="constrained")
    labels, values = [f for f, _ in flow][::-1], [n for _, n in flow][::-1]
    bars = ax.barh(labels, values, color="#1f5fbf")
    ax.bar_label(bars, padding=3, fontsize=8)
    ax.set_xlim(0, max([*values, 1]) * 1.15)
    ax.set_title("Participant flow", fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    return fig


def show_dashboard(db_path: str | Path, target_answers: int | None = None, excluded: int | None = None) -> None:
    """Draw the three plots on the admin page (Streamlit), side by side on a wide screen."""
    import streamlit as st

    figs = [
        progress_figure(progress_series(db_path), target_answers),
        rates_figure(condition_rates(db_path)),
        flow_figure(participant_flow(db_path, excluded)),
    ]
    alts = ["Progress over time: answers stored", "Rates per condition with 95% Wilson intervals", "Participant flow"]
    cols = st.columns(3, gap="medium")
    for col, fig, alt in zip(cols, figs, alts):
        with col:
            st.image(figure_png(fig), alt=alt, output_format="PNG")  # st.pyplot has no alt text
    st.caption(" · ".join(alts))


def figure_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
