"""The results file: append, crash tolerance, atomic in-order rewrite, formula escaping."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from importer.exceptions import ResultsFileError
from importer.results import journal as journal_module
from importer.results.journal import (
    COLUMNS,
    Journal,
    Result,
    escape_cell,
    read_outcomes,
    unescape_cell,
)
from importer.results.status import Status


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_finalize_keeps_latest_outcome_per_row_in_row_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "r.csv")
    journal.open()
    journal.record(Result(3, "c@x", Status.SENDING, attempts=1))
    journal.record(Result(2, "b@x", Status.SENDING, attempts=1))
    journal.record(Result(3, "c@x", Status.FAILED, http_status=503, attempts=1))
    journal.record(Result(3, "c@x", Status.SENDING, attempts=2))
    journal.record(Result(2, "b@x", Status.SUCCESS, activity_id="a2", attempts=1))
    journal.record(Result(3, "c@x", Status.SUCCESS, activity_id="a3", attempts=2))
    journal.record(Result(4, "d@x", Status.SENDING, attempts=1))
    counts = journal.finalize()
    lines = rows_of(tmp_path / "r.csv")
    assert [(r["row"], r["status"], r["attempts"]) for r in lines] == [
        ("2", Status.SUCCESS, "1"),
        ("3", Status.SUCCESS, "2"),
        ("4", Status.UNKNOWN, "1"),
    ]
    assert "no outcome" in lines[2]["error_message"]
    assert counts == {Status.SUCCESS: 2, Status.UNKNOWN: 1}
    assert list(lines[0]) == list(COLUMNS)


def test_intent_without_outcome_reads_as_unknown(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "r.csv")
    journal.open()
    journal.record(Result(2, "k", Status.SENDING))
    journal.record(Result(3, "k2", Status.SENDING))
    journal.record(Result(3, "k2", Status.SUCCESS, activity_id="x"))
    journal.close()
    assert read_outcomes(tmp_path / "r.csv").as_dict() == {2: Status.UNKNOWN, 3: Status.SUCCESS}


def test_torn_last_line_is_ignored_and_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    journal = Journal(path)
    journal.open()
    journal.record(Result(2, "k", Status.SENDING))
    journal.record(Result(2, "k", Status.SUCCESS, activity_id="a"))
    journal.close()
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("3,k3,succ")  # kill -9 in the middle of a write
    assert read_outcomes(path).as_dict() == {2: Status.SUCCESS}
    again = Journal(path)
    again.open()
    again.record(Result(3, "k3", Status.SENDING))
    again.record(Result(3, "k3", Status.FAILED, error_message="x"))
    again.finalize()
    assert [(r["row"], r["status"]) for r in rows_of(path)] == [
        ("2", Status.SUCCESS),
        ("3", Status.FAILED),
    ]


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
    journal.record(Result(2, "k", Status.FAILED, error_message="line one\nline two"))
    journal.close()
    assert path.read_text().count("\n") == 2


def test_keys_with_commas_quotes_and_newlines_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    journal = Journal(path)
    journal.open()
    journal.record(Result(2, 'a,"b"\nc', Status.SENDING))
    journal.record(Result(3, "plain", Status.SENDING))
    journal.record(Result(3, "plain", Status.SUCCESS))
    journal.close()
    assert read_outcomes(path).as_dict() == {2: Status.UNKNOWN, 3: Status.SUCCESS}
    journal.finalize()
    lines = rows_of(path)
    assert [(r["key"], r["status"]) for r in lines] == [
        ('a,"b" c', Status.UNKNOWN),
        ("plain", Status.SUCCESS),
    ]


def test_damaged_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(",".join(COLUMNS) + "\n2,k,success,,,200,,,1,x\ngarbage\n")
    with pytest.raises(ResultsFileError, match="line 3 is damaged"):
        read_outcomes(path)


def test_outcome_counts(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    journal = Journal(path)
    journal.open()
    for row, status in [
        (2, Status.SUCCESS),
        (3, Status.FAILED),
        (4, Status.SENDING),
        (5, Status.SUCCESS),
    ]:
        journal.record(Result(row, "k", status))
    journal.close()
    outcomes = read_outcomes(path)
    assert outcomes.counts() == {Status.SUCCESS: 2, Status.FAILED: 1, Status.UNKNOWN: 1}
    assert len(outcomes) == 4
    assert outcomes.get(99) is None and outcomes.get(4) == Status.UNKNOWN


def test_resume_planning_reads_big_files_in_blocks_and_still_names_the_damaged_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """read_outcomes parses whole blocks with bytes operations; a quoted key holding a
    status word between commas, or a damaged line in a later block, must read as before."""
    monkeypatch.setattr(journal_module, "_BLOCK", 64)  # many blocks, lines across boundaries
    path = tmp_path / "r.csv"
    journal = Journal(path)
    journal.open()
    journal.record(Result(2, "a,failed,b", Status.SUCCESS))
    for row in range(3, 40):
        journal.record(Result(row, f"k{row}", Status.FAILED if row % 3 else Status.SENDING))
    journal.record(Result(3, "k3", Status.SUCCESS))
    journal.close()
    outcomes = read_outcomes(path)
    assert outcomes.get(2) == Status.SUCCESS and outcomes.get(3) == Status.SUCCESS
    assert outcomes.get(6) == Status.UNKNOWN and outcomes.get(7) == Status.FAILED
    assert len(outcomes) == 38
    lines = path.read_bytes().split(b"\n")
    for bad in (
        b"30,k,nonsense,,,,,,1,x",  # an unknown status
        b"1,k,success,,,,,,1,x",  # row 1 is the header
        b"9,k\xff,success,,,,,,1,x",  # not UTF-8
        b"garbage",
    ):
        path.write_bytes(b"\n".join([*lines[:25], bad, *lines[26:]]))
        with pytest.raises(ResultsFileError, match="line 26 is damaged"):
            read_outcomes(path)


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch, results: Path) -> list[tuple[str, int]]:
    """Record each os.fsync as (what it syncs: 'folder', 'results' or 'other', the results
    file's size by name at that moment: -1 when the name is not there)."""
    import os
    import stat

    events: list[tuple[str, int]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced = os.fstat(fd)
        folder = results.parent.stat()
        by_name = results.stat() if results.exists() else None
        if stat.S_ISDIR(synced.st_mode) and synced.st_ino == folder.st_ino:
            what = "folder"
        elif by_name is not None and synced.st_ino == by_name.st_ino:
            what = "results"
        else:
            what = "other"
        events.append((what, by_name.st_size if by_name is not None else -1))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return events


def test_a_new_results_file_has_its_folder_fsynced_once_its_header_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The intents fsynced into a new file are lost with it if its name is not on disk: after a
    # power cut the rerun would find no results file and send those rows again.
    results = tmp_path / "r.csv"
    events = _record_fsyncs(monkeypatch, results)
    Journal(results).open()
    header = len(",".join(COLUMNS)) + 1
    assert events == [("results", header), ("folder", header)]


def test_reopening_a_results_file_does_not_fsync_its_folder_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "r.csv"
    journal = Journal(results)
    journal.open()
    journal.record(Result(2, "a@x", Status.SUCCESS, attempts=1))
    journal.close()
    events = _record_fsyncs(monkeypatch, results)
    Journal(results).open()
    assert events == []


def test_server_texts_are_bounded_and_writable_in_a_results_line(tmp_path: Path) -> None:
    """A 150 kB stack trace as the error message passed the CSV reader's field limit (every
    later run: "line 2 is damaged"); a lone surrogate could not be encoded at all."""
    from importer.results.journal import MAX_MESSAGE, Journal, Result, read_outcomes

    journal = Journal(tmp_path / "r.csv")
    journal.open()
    journal.record(
        Result(2, "a@x.com", Status.FAILED, error_type="E\udc80", error_message="x" * 150_000)
    )
    journal.close()
    assert read_outcomes(tmp_path / "r.csv").get(2) is Status.FAILED
    line = (tmp_path / "r.csv").read_text(encoding="utf-8").splitlines()[1]
    assert len(line) < MAX_MESSAGE + 200 and "E?" in line
