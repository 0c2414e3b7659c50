"""Declared exclusion rules: which raters a study drops, decided before looking at the results.

The study config declares the rules (`[exclusion]` in study.toml); `spade-study serve` stores
them in the database (`meta.exclusion_rules`, JSON). The study app (admin page) and the
analysis evaluate them with the same pure functions here, so both name the same raters:

    rules = ExclusionRules.from_dict(json.loads(meta_value))   # or read_rules(sqlite3_conn)
    measures = rater_measures(responses_df, raters_df)        # one row per rater
    table = evaluate(measures, rules)                         # fails_<rule> columns + excluded
    excluded = table.index[table["excluded"]].tolist()

`responses_df` has the columns of the responses CSV (`contracts.responses`); `raters_df` the
columns of the `raters_export` view (`RATER_COLUMNS`), or None when only a CSV is at hand: then
the rules that need it (instruction time, practice) are not evaluable and exclude nobody, and the
total time is measured from the first task shown to the last answer.

A rule set to its "off" value (0, or 1.0 for the speeder fraction, false for practice) excludes
nobody. `sensitivity_variants(rules)` gives the rule sets of a sensitivity table: none, each
declared rule alone, all declared, stricter and looser thresholds.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, fields, replace

import pandas as pd

META_KEY = "exclusion_rules"  # meta table key holding the declared rules as JSON
RATERS_VIEW = "raters_export"  # one row per rater; withdrawn raters are absent
RATER_COLUMNS: tuple[str, ...] = ("rater_id", "consented_at", "instructions_done_at", "completed_at", "practice_passed")


@dataclass(frozen=True)
class ExclusionRules:
    """Thresholds a rater must meet to be kept; each field's "off" value excludes nobody."""

    min_catch_accuracy: float = 0.0  # share of catch trials answered correctly (IMI: 0.8)
    min_instruction_seconds: float = 0.0  # consent -> instructions done (IMI: 15)
    min_total_seconds: float = 0.0  # consent -> completion (IMI: 135)
    max_total_seconds: float = 0.0  # 0: no upper bound (IMI: 2500)
    max_speeder_fraction: float = 1.0  # share of answers flagged speeder
    min_answers_per_side: int = 0  # A and B each chosen at least this often (IMI: 5)
    require_practice_passed: bool = False

    @classmethod
    def from_dict(cls, data: dict) -> "ExclusionRules":
        """Build rules from a dict (TOML section or stored JSON); raise ValueError on an unknown key or bad value."""
        known = {f.name: f for f in fields(cls)}
        out: dict = {}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"[exclusion]: unknown key {key!r} (known: {', '.join(sorted(known))})")
            default = getattr(cls(), key)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"exclusion.{key} must be true or false")
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"exclusion.{key} must be a number")
            out[key] = value
        rules = cls(**out)
        rules.check()
        return rules

    def check(self) -> None:
        """Raise ValueError (one line) when a threshold is out of range."""
        if not 0 <= self.min_catch_accuracy <= 1:
            raise ValueError(f"exclusion.min_catch_accuracy must be between 0 and 1, not {self.min_catch_accuracy}")
        if not 0 <= self.max_speeder_fraction <= 1:
            raise ValueError(f"exclusion.max_speeder_fraction must be between 0 and 1, not {self.max_speeder_fraction}")
        for key in ("min_instruction_seconds", "min_total_seconds", "max_total_seconds", "min_answers_per_side"):
            if getattr(self, key) < 0:
                raise ValueError(f"exclusion.{key} must be >= 0, not {getattr(self, key)}")
        if self.max_total_seconds and self.max_total_seconds < self.min_total_seconds:
            raise ValueError("exclusion.max_total_seconds must be 0 (no bound) or >= min_total_seconds")

    def to_dict(self) -> dict:
        """The rules as a plain dict (stored as JSON in the database)."""
        return asdict(self)

    def active(self) -> list[str]:
        """Names of the rules that can exclude someone (see `RULES`)."""
        off = ExclusionRules()
        out = []
        for rule, keys in RULES.items():
            if any(getattr(self, k) != getattr(off, k) for k in keys):
                out.append(rule)
        return out


# rule name -> the config keys it reads
RULES: dict[str, tuple[str, ...]] = {
    "catch_accuracy": ("min_catch_accuracy",),
    "instruction_time": ("min_instruction_seconds",),
    "total_time": ("min_total_seconds", "max_total_seconds"),
    "speeders": ("max_speeder_fraction",),
    "answers_per_side": ("min_answers_per_side",),
    "practice": ("require_practice_passed",),
}


def _seconds(later: pd.Series, earlier: pd.Series) -> pd.Series:
    a = pd.to_datetime(later, utc=True, errors="coerce", format="ISO8601")
    b = pd.to_datetime(earlier, utc=True, errors="coerce", format="ISO8601")
    return (a - b).dt.total_seconds()


def rater_measures(responses: pd.DataFrame, raters: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per rater (index rater_id): catch_accuracy, instruction_s, total_s, speeder_fraction,
    n_A, n_B (answers per side, catch trials included), practice_passed; NaN where unknown."""
    df = responses.copy()
    df["is_catch"] = pd.to_numeric(df["is_catch"], errors="coerce").fillna(0).astype(int)
    df["hit"] = (df["choice"] == df["correct"]).astype(float)
    speeder = pd.to_numeric(df["speeder"], errors="coerce") if "speeder" in df.columns else pd.Series(float("nan"), index=df.index)
    df["speeder_num"] = speeder
    g = df.groupby("rater_id", sort=True)
    out = pd.DataFrame(index=pd.Index(sorted(df["rater_id"].unique()), name="rater_id"))
    catch = df[df["is_catch"] == 1].groupby("rater_id")["hit"].mean()
    out["catch_accuracy"] = catch.reindex(out.index)
    out["speeder_fraction"] = g["speeder_num"].mean().reindex(out.index)
    out["n_A"] = g["choice"].apply(lambda s: int((s == "A").sum())).reindex(out.index).fillna(0).astype(int)
    out["n_B"] = g["choice"].apply(lambda s: int((s == "B").sum())).reindex(out.index).fillna(0).astype(int)
    task_span = _seconds(g["answered_at"].max(), g["shown_at"].min()).reindex(out.index)
    out["instruction_s"] = float("nan")
    out["total_s"] = task_span
    out["practice_passed"] = float("nan")
    if raters is not None and len(raters):
        r = raters.set_index("rater_id")
        r = r[~r.index.duplicated()]
        # Raters who answered nothing are still raters (they may fail the time rules).
        out = out.reindex(out.index.union(r.index))
        out.index.name = "rater_id"
        out[["n_A", "n_B"]] = out[["n_A", "n_B"]].fillna(0).astype(int)
        rr = r.reindex(out.index)
        out["instruction_s"] = _seconds(rr["instructions_done_at"], rr["consented_at"])
        total = _seconds(rr["completed_at"], rr["consented_at"])
        out["total_s"] = total
        out["practice_passed"] = pd.to_numeric(rr["practice_passed"], errors="coerce")
    return out


def evaluate(measures: pd.DataFrame, rules: ExclusionRules) -> pd.DataFrame:
    """Per rater, one boolean column `fails_<rule>` per rule in `RULES` and `excluded` (fails any).
    An unknown measure (NaN: no catch trial answered, no raters table, not finished) fails no rule."""
    m = measures
    out = pd.DataFrame(index=m.index)
    out["fails_catch_accuracy"] = m["catch_accuracy"] < rules.min_catch_accuracy
    out["fails_instruction_time"] = m["instruction_s"] < rules.min_instruction_seconds
    too_long = (m["total_s"] > rules.max_total_seconds) if rules.max_total_seconds else False
    out["fails_total_time"] = (m["total_s"] < rules.min_total_seconds) | too_long
    out["fails_speeders"] = m["speeder_fraction"] > rules.max_speeder_fraction
    out["fails_answers_per_side"] = (m["n_A"] < rules.min_answers_per_side) | (m["n_B"] < rules.min_answers_per_side)
    out["fails_practice"] = (m["practice_passed"] == 0) if rules.require_practice_passed else False
    out = out.fillna(False).astype(bool)  # comparisons with NaN are already False; keep dtype bool
    out["excluded"] = out.any(axis=1)
    return out


def excluded_raters(responses: pd.DataFrame, rules: ExclusionRules, raters: pd.DataFrame | None = None) -> list[str]:
    """The sorted ids of the raters the rules exclude."""
    table = evaluate(rater_measures(responses, raters), rules)
    return sorted(table.index[table["excluded"]].tolist())


def sensitivity_variants(rules: ExclusionRules, factor: float = 0.5) -> dict[str, ExclusionRules]:
    """Rule sets for a sensitivity table: 'none', 'declared', '<rule> only' for each declared rule,
    'stricter' and 'looser' (every declared threshold moved by `factor` of its distance to "off")."""
    off = ExclusionRules()
    out = {"none": off, "declared": rules}
    for rule in rules.active():
        out[f"{rule} only"] = replace(off, **{k: getattr(rules, k) for k in RULES[rule]})

    def moved(sign: float) -> ExclusionRules:
        r = rules
        if rules.min_catch_accuracy:
            r = replace(r, min_catch_accuracy=min(1.0, max(0.0, rules.min_catch_accuracy * (1 + sign * factor))))
        for key in ("min_instruction_seconds", "min_total_seconds"):
            if getattr(rules, key):
                r = replace(r, **{key: getattr(rules, key) * (1 + sign * factor)})
        if rules.max_total_seconds:
            r = replace(r, max_total_seconds=rules.max_total_seconds * (1 - sign * factor))
        if rules.max_speeder_fraction < 1:
            r = replace(r, max_speeder_fraction=min(1.0, max(0.0, rules.max_speeder_fraction * (1 - sign * factor))))
        if rules.min_answers_per_side:
            r = replace(r, min_answers_per_side=max(0, round(rules.min_answers_per_side * (1 + sign * factor))))
        return r

    if rules.active():
        out["stricter"] = moved(+1)
        out["looser"] = moved(-1)
    return out


def read_rules(conn: sqlite3.Connection) -> ExclusionRules | None:
    """Read the declared rules from a study database (None when none were stored)."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", [META_KEY]).fetchone()
    except sqlite3.DatabaseError:
        return None
    return None if row is None else ExclusionRules.from_dict(json.loads(row[0]))


def read_raters(conn: sqlite3.Connection) -> pd.DataFrame | None:
    """Read the `raters_export` view of a study database (None when the database has none)."""
    try:
        return pd.read_sql_query(f"SELECT {', '.join(RATER_COLUMNS)} FROM {RATERS_VIEW}", conn)
    except (sqlite3.DatabaseError, pd.errors.DatabaseError):
        return None
