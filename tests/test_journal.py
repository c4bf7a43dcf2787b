"""The results file: append, crash tolerance, atomic in-order rewrite, formula escaping."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from importer.exceptions import ResultsFileError
from importer.results.journal import (
    COLUMNS,
    FAILED,
    SENDING,
    SUCCESS,
    UNKNOWN,
    Journal,
    Result,
    escape_cell,
    read_outcomes,
    unescape_cell,
)


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_finalize_keeps_latest_outcome_per_row_in_row_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "r.csv")
    journal.open()
    journal.record(Result(3, "c@x", SENDING, attempts=1))
    journal.record(Result(2, "b@x", SENDING, attempts=1))
    journal.record(Result(3, "c@x", FAILED, http_status=503, attempts=1))
    journal.record(Result(3, "c@x", SENDING, attempts=2))
    journal.record(Result(2, "b@x", SUCCESS, activity_id="a2", attempts=1))
    journal.record(Result(3, "c@x", SUCCESS, activity_id="a3", attempts=2))
    journal.record(Result(4, "d@x", SENDING, attempts=1))
    counts = journal.finalize()
    lines = rows_of(tmp_path / "r.csv")
    assert [(r["row"], r["status"], r["attempts"]) for r in lines] == [
        ("2", SUCCESS, "1"),
        ("3", SUCCESS, "2"),
        ("4", UNKNOWN, "1"),
    ]
    assert "no outcome" in lines[2]["error_message"]
    assert counts == {SUCCESS: 2, UNKNOWN: 1}
    assert list(lines[0]) == list(COLUMNS)


def test_intent_without_outcome_reads_as_unknown(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "r.csv")
    journal.open()
    journal.record(Result(2, "k", SENDING))
    journal.record(Result(3, "k2", SENDING))
    journal.record(Result(3, "k2", SUCCESS, activity_id="x"))
    journal.close()
    assert read_outcomes(tmp_path / "r.csv").as_dict() == {2: UNKNOWN, 3: SUCCESS}


def test_torn_last_line_is_ignored_and_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    journal = Journal(path)
    journal.open()
    journal.record(Result(2, "k", SENDING))
    journal.record(Result(2, "k", SUCCESS, activity_id="a"))
    journal.close()
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("3,k3,succ")  # kill -9 in the middle of a write
    assert read_outcomes(path).as_dict() == {2: SUCCESS}
    again = Journal(path)
    again.open()
    again.record(Result(3, "k3", SENDING))
    again.record(Result(3, "k3", FAILED, error_message="x"))
    again.finalize()
    assert [(r["row"], r["status"]) for r in rows_of(path)] == [("2", SUCCESS), ("3", FAILED)]


def test_missing_file_means_nothing_done(tmp_path: Path) -> None:
    assert read_outcomes(tmp_path / "none.csv").as_dict() == {}


def test_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("email,name\na@x,A\n")
    with pytest.raises(ResultsFileError, match="not an lsq-import results file"):
        read_outcomes(path)


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsFileError, match="does not exist"):
        Journal(tmp_path / "nope" / "r.csv").open()


@pytest.mark.parametrize("text", ["=1+1", "+91 98450", "-5", "@SUM(A1)", "\tx", "'quoted", "a=b"])
def test_formula_escaping_is_reversible(text: str) -> None:
    escaped = escape_cell(text)
    assert not escaped.startswith(("=", "+", "-", "@", "\t"))
    assert unescape_cell(escaped) == text


def test_error_messages_stay_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    journal = Journal(path)
    journal.open()
    journal.record(Result(2, "k", FAILED, error_message="line one\nline two"))
    journal.close()
    assert path.read_text().count("\n") == 2


def test_keys_with_commas_quotes_and_newlines_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    journal = Journal(path)
    journal.open()
    journal.record(Result(2, 'a,"b"\nc', SENDING))
    journal.record(Result(3, "plain", SENDING))
    journal.record(Result(3, "plain", SUCCESS))
    journal.close()
    assert read_outcomes(path).as_dict() == {2: UNKNOWN, 3: SUCCESS}
    journal.finalize()
    lines = rows_of(path)
    assert [(r["key"], r["status"]) for r in lines] == [('a,"b" c', UNKNOWN), ("plain", SUCCESS)]


def test_damaged_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(",".join(COLUMNS) + "\n2,k,success,,,200,,,1,x\ngarbage\n")
    with pytest.raises(ResultsFileError, match="line 3 is damaged"):
        read_outcomes(path)


def test_outcome_counts(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    journal = Journal(path)
    journal.open()
    for row, status in [(2, SUCCESS), (3, FAILED), (4, SENDING), (5, SUCCESS)]:
        journal.record(Result(row, "k", status))
    journal.close()
    outcomes = read_outcomes(path)
    assert outcomes.counts() == {SUCCESS: 2, FAILED: 1, UNKNOWN: 1}
    assert len(outcomes) == 4
    assert outcomes.get(99) is None and outcomes.get(4) == UNKNOWN
