"""Loading responses: the CSV and the study DB give the same table; malformed input is refused, naming the rows."""
from __future__ import annotations

import hashlib
import sqlite3

import pandas as pd
import pytest
from analysis.examples import COLUMNS, paper_responses, responses_frame, write_csv, write_study_db

from analysis.cli import main as analyze
from analysis.io import ResponsesError, load_responses, read_responses_csv, read_responses_db
from contracts.responses import COLUMNS as CONTRACT_COLUMNS

GOOD = [("a", "t1", "i1", "spade", "A", "A"), ("b", "t1", "i1", "spade", "B", "A"),
        ("a", "t2", "i2", "dense", "undecided", "B"), ("b", "t3", "i3", "dense", "A", "A", 1)]


@pytest.fixture
def good_csv(tmp_path):
    return write_csv(responses_frame(GOOD), tmp_path / "responses.csv")


def test_db_and_csv_give_the_same_table(tmp_path):
    raw = paper_responses()
    from_csv = read_responses_csv(write_csv(raw, tmp_path / "r.csv"))
    db = write_study_db(raw, tmp_path / "study.db")
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    from_db = read_responses_db(db)
    pd.testing.assert_frame_equal(from_csv, from_db)
    assert len(from_csv) == 818 and list(from_csv.columns) == list(CONTRACT_COLUMNS)
    assert from_csv["is_catch"].dtype.kind == "i" and from_csv["response_ms"].dtype.kind == "f"
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest  # opened read-only, left untouched


def test_csv_row_order_does_not_matter(tmp_path):
    raw = responses_frame(GOOD)
    a = read_responses_csv(write_csv(raw, tmp_path / "a.csv"))
    b = read_responses_csv(write_csv(raw.iloc[::-1], tmp_path / "b.csv"))
    pd.testing.assert_frame_equal(a, b)


def _broken(tmp_path, edit) -> str:
    df = responses_frame(GOOD)
    df = edit(df)
    path = write_csv(df, tmp_path / "bad.csv")
    with pytest.raises(ResponsesError) as info:
        read_responses_csv(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_missing_columns_are_named(tmp_path):
    msg = _broken(tmp_path, lambda df: df.drop(columns=["choice", "correct"]))
    assert "missing columns choice, correct" in msg


def test_unknown_condition_names_the_line(tmp_path):
    def edit(df):
        df.loc[2, "condition"] = "sparse"
        return df
    msg = _broken(tmp_path, edit)
    # data row 2 (0-based) is line 4 of the file: line 1 is the header
    assert "unknown condition 'sparse'" in msg and "line 4" in msg and "dense|spade" in msg


def test_unknown_choice_names_every_line(tmp_path):
    def edit(df):
        df.loc[0, "choice"] = "C"
        df.loc[3, "choice"] = "a"
        return df
    msg = _broken(tmp_path, edit)
    assert "unknown choice 'C', 'a'" in msg and "lines 2, 5" in msg


@pytest.mark.parametrize("column,value,expected", [
    ("target", "both", "unknown target 'both'"),
    ("correct", "undecided", "unknown correct 'undecided'"),
    ("is_catch", "yes", "unknown is_catch 'yes'"),
    ("response_ms", "soon", "response_ms is not a finite non-negative number"),
    ("response_ms", "inf", "response_ms is not a finite non-negative number"),
    ("response_ms", "1e400", "response_ms is not a finite non-negative number"),
    ("response_ms", "-5", "response_ms is not a finite non-negative number"),
    ("rater_id", "", "empty rater_id"),
])
def test_other_bad_values(tmp_path, column, value, expected):
    def edit(df):
        df.loc[1, column] = value
        return df
    msg = _broken(tmp_path, edit)
    assert expected in msg and "line 3" in msg


def test_duplicate_rater_task_names_both_lines(tmp_path):
    msg = _broken(tmp_path, lambda df: pd.concat([df, df.iloc[[0]]], ignore_index=True))
    assert "duplicate (rater_id, task_id) (a, t1)" in msg and "lines 2, 6" in msg


def test_task_with_two_conditions_is_refused(tmp_path):
    def edit(df):
        df.loc[1, "condition"] = "dense"  # t1 is spade for rater a, dense for rater b
        return df
    msg = _broken(tmp_path, edit)
    assert "task_id 't1' with different item, condition or target" in msg and "lines 2, 3" in msg


def test_empty_and_unreadable_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ResponsesError, match="empty file"):
        read_responses_csv(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(COLUMNS) + "\n")
    with pytest.raises(ResponsesError, match="no responses"):
        read_responses_csv(header_only)
    with pytest.raises(ResponsesError, match="no such responses file"):
        read_responses_csv(tmp_path / "nope.csv")


def test_db_without_the_view_is_refused(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE x (a)")
    with pytest.raises(ResponsesError, match="cannot read the responses_export view"):
        read_responses_db(path)
    with pytest.raises(ResponsesError, match="no such study database"):
        read_responses_db(tmp_path / "missing.db")
    not_sqlite = tmp_path / "text.db"
    not_sqlite.write_text("hello")
    with pytest.raises(ResponsesError, match="cannot read"):
        read_responses_db(not_sqlite)


def test_db_with_bad_rows_is_refused_naming_view_rows(tmp_path):
    df = responses_frame(GOOD)
    df.loc[1, "choice"] = "maybe"
    with pytest.raises(ResponsesError, match=r"unknown choice 'maybe' .* at view row \d"):
        read_responses_db(write_study_db(df, tmp_path / "s.db"))


def test_load_responses_needs_exactly_one_source(good_csv):
    with pytest.raises(ResponsesError, match="exactly one"):
        load_responses()
    with pytest.raises(ResponsesError, match="exactly one"):
        load_responses(db=good_csv, csv=good_csv)


def test_cli_refuses_bad_input_with_one_line_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    df = responses_frame(GOOD)
    df.loc[0, "condition"] = "sparse"
    write_csv(df, bad)
    out = tmp_path / "out"
    assert analyze(["--responses", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "line 2" in err
    assert not out.exists()
    # argument mistakes: one line too
    assert analyze(["--responses", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--out" in err
    assert analyze(["--responses", str(bad), "--db", str(bad), "--out", str(out)]) == 2
    assert "not allowed with" in capsys.readouterr().err
    assert analyze(["--responses", str(bad), "--out", str(out), "--min-catch-accuracy", "2"]) == 2
    assert "[0, 1]" in capsys.readouterr().err


def test_nothing_left_to_analyse_is_refused(tmp_path, capsys):
    only_catch = write_csv(responses_frame([("a", "k1", "i1", "dense", "A", "A", 1),
                                            ("b", "k1", "i1", "dense", "B", "A", 1)]), tmp_path / "catch.csv")
    assert analyze(["--responses", str(only_catch), "--out", str(tmp_path / "o"), "--no-models"]) == 2
    assert "no ratings to analyse: all 2 responses are catch trials" in capsys.readouterr().err
    # rater b misses the catch trial; excluding b leaves nothing of substance but a's rating
    rows = GOOD[:1] + [("b", "k1", "i9", "dense", "B", "A", 1), ("b", "t7", "i7", "dense", "A", "A")]
    path = write_csv(responses_frame(rows), tmp_path / "some.csv")
    assert analyze(["--responses", str(path), "--out", str(tmp_path / "p"), "--no-models", "--quiet",
                    "--exclude-raters-failing-catch"]) == 0
    only_b = write_csv(responses_frame(rows[1:]), tmp_path / "b.csv")
    assert analyze(["--responses", str(only_b), "--out", str(tmp_path / "q"), "--no-models", "--quiet",
                    "--exclude-raters-failing-catch"]) == 2
    assert "or from the 1 excluded rater(s)" in capsys.readouterr().err


def test_one_condition_only_gives_nulls_not_crashes(tmp_path):
    spade_only = [r for r in GOOD if r[3] == "spade"]
    path = write_csv(responses_frame(spade_only), tmp_path / "s.csv")
    assert analyze(["--responses", str(path), "--out", str(tmp_path / "o"), "--quiet", "--bootstrap", "20"]) == 0
    import json
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["dense"]["n"] == 0 and s["dense"]["decision_rate"] is None
    assert s["difference"]["net"]["estimate"] is None
    assert s["models"]["mixed_net"] == {"fitted": False, "reason": "only one condition present"}
    assert s["models"]["bootstrap"]["raters"]["net"]["ci"] is None
