"""read_report in bounded memory: a journal reads as its finalized file; bounds where they apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from importer.results import report as report_module
from importer.results.journal import Journal, Result
from importer.results.report import read_report, rows_with_status
from importer.results.status import Status


def _journal(path: Path, events: list[Result]) -> Journal:
    journal = Journal(path)
    journal.open()
    for event in events:
        journal.record(event)
    journal.close()
    return journal


def _events() -> list[Result]:
    """Several lines per row, out of row order, as a journal mid-run holds them."""
    events = []
    for row in range(40, 1, -1):
        minute = f"2025-01-01T10:{row % 60:02d}:{row % 7:02d}Z"
        events.append(Result(row, f"k{row}", Status.SENDING, finished_at=minute))
        status = Status.FAILED if row % 4 == 0 else Status.SUCCESS
        if row % 9 == 0:
            continue  # its call never answered: unknown
        events.append(
            Result(
                row,
                f"k{row}",
                status,
                error_message=f"bad {row % 3}",
                attempts=1 + row % 2,
                finished_at=minute,
            )
        )
    return events


def test_a_journal_reports_as_the_file_it_finalizes_to(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    journal = _journal(path, _events())
    mid_run = read_report(path).to_dict()
    listed = list(rows_with_status(path, "unknown"))
    journal.finalize()
    final = read_report(path).to_dict()
    assert mid_run == final
    assert final["unknown_rows"] == [9, 18, 27, 36] and final["unknown_rows_more"] == 0
    assert [line.split(",")[0] for line in listed[1:]] == ["9", "18", "27", "36"]
    assert [line.split(",")[0] for line in rows_with_status(path, "unknown")][1:] == [
        "9",
        "18",
        "27",
        "36",
    ]
    assert sum(g["count"] for g in final["errors"]) == final["rows"] - final["by_status"]["success"]
    assert all(g["example_rows"] == sorted(g["example_rows"]) for g in final["errors"])


def test_error_groups_and_unknown_rows_are_bounded_with_counts_of_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten kinds of error (one a row): groups and the list of unknown rows stop growing, and
    say how many more rows there are."""
    monkeypatch.setattr(report_module, "MAX_ERROR_GROUPS", 3)
    monkeypatch.setattr(report_module, "MAX_UNKNOWN_ROWS", 2)
    events = [
        Result(row, "k", Status.FAILED, error_type=f"E{row}", error_message="taken")
        for row in range(2, 12)
    ]
    events += [Result(row, "k", Status.UNKNOWN) for row in range(12, 17)]
    path = tmp_path / "r.csv"
    _journal(path, events)
    report = read_report(path)
    assert len(report.errors) == 3
    assert report.errors_more_rows == 10 + 5 - 3  # the unknown rows' group came too late
    assert report.unknown_rows == [12, 13] and report.unknown_rows_more == 3
    assert report.by_status == {"failed": 10, "unknown": 5}
    assert "and 12 more rows in other kinds of error" in report.to_text()


def test_a_long_timeline_stays_within_its_buckets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows over three days: the per-second keys merge into wider ones as they go, exactly."""
    monkeypatch.setattr(report_module, "_MAX_TIME_KEYS", 130)
    events = []
    for row in range(2, 3000):
        seconds = row * 97
        day, rest = divmod(seconds, 86400)
        stamp = f"2025-01-{1 + day:02d}T{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}Z"
        events.append(Result(row, "k", Status.SUCCESS, finished_at=stamp))
    path = tmp_path / "r.csv"
    _journal(path, events)
    report = read_report(path)
    assert report.bucket_seconds == 3600
    assert sum(sum(c.values()) for _, c in report.timeline) == 2998
    assert len(report.timeline) <= 121
    assert report.first_finished == events[0].finished_at
    assert report.last_finished == events[-1].finished_at
    assert report.timeline[0][0] == events[0].finished_at[:14] + "00:00"  # on the hour
