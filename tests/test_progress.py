"""The progress bar as a person sees it (tqdm's output captured, or the CLI in a pseudo-terminal)
and the line a Ctrl-C gets at once: the total counts rows (not a CSV's lines) and is exact for
an Excel sheet, invalid rows are not counted as failed, and a run that stops shows where."""

from __future__ import annotations

import csv
import io
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from importer.exitcodes import ExitStatus
from importer.progress import NoProgress, ProgressBar, estimate_rows
from importer.results import Result, Status
from importer.sending.stop import StopReason
from importer.validate import validate_file

from .conftest import EXAMPLE_MAPPING, ROOT, SANDBOX_KEYS, import_into, read_results

ROWS, INVALID = 620, 25
KEYS_ENV = {"LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key, "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key}
HEADER = [
    "first_name", "last_name", "email", "phone", "city", "kyc_status", "visited_at", "amount",
    "product", "notes",
]  # fmt: skip


def trial_rows(bad_dates: bool = True) -> list[list[str]]:
    """620 rows like a CRM export's: long notes, some over two or three lines (so the file
    has about 790 lines), accented names, and 25 rows whose date no format reads."""
    rows = []
    for i in range(ROWS):
        note = f"Call {i}: asked about the premium plan and the fees; " + "details " * 18
        if i % 4 == 0:
            note += "\nFollow-up: send the brochure and call back next week."
        if i % 50 == 1:
            note += "\nManager: approved."
        when = (
            "not a date"
            if bad_dates and i % 25 == 7
            else f"{1 + i % 28:02d}/0{1 + i % 9}/2024 1{i % 10}:15"
        )
        rows.append(
            [
                ["Zoë", "André", "Meera"][i % 3],
                f"Nuñez{i}",
                f"lead{i}@example.com",
                f"+91 98450 {10000 + i}",
                "Pune",
                "Verified",
                when,
                f"{i},499.50",
                "Demat",
                note,
            ]  # fmt: skip
        )
    return rows


def write_trial_csv(path: Path, bad_dates: bool = True) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([HEADER, *trial_rows(bad_dates)])
    return path


def write_trial_xlsx(path: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in [HEADER, *trial_rows()]:
        sheet.append(row)
    book.save(path)
    return path


class Watch(NoProgress):
    """Hands every event to ``bar`` and writes down the counts and the order of events."""

    def __init__(self, bar: ProgressBar, on_settled: Callable[[int], None] | None = None):
        self.bar = bar
        self.counts: list[tuple[int, bool]] = []
        self.events: list[str] = []
        self.settled_rows = 0
        self._on_settled = on_settled

    def started(self, input_path: Path) -> None:
        self.events.append("started")
        self.bar.started(input_path)

    def counted(self, rows: int, exact: bool) -> None:
        self.counts.append((rows, exact))
        self.events.append("counted")
        self.bar.counted(rows, exact)

    def skipped(self, n: int = 1) -> None:
        self.events.append("skipped")
        self.bar.skipped(n)

    def settled(self, result: Result) -> None:
        self.events.append("settled")
        self.settled_rows += 1
        self.bar.settled(result)
        if self._on_settled is not None:
            self._on_settled(self.settled_rows)

    def stopping(self, calls_in_flight: int, again: str) -> None:
        self.events.append(f"stopping {calls_in_flight} {again}")
        self.bar.stopping(calls_in_flight, again)

    def finished(self) -> None:
        self.events.append("finished")
        self.bar.finished()


# "116/~620 [" : rows done, "~" when the total is an estimate, the total
_FRAME = re.compile(r"(\d+)/(~?)(\d+) \[([^<\]]*)<([^,\]]*)")


def frames(text: str) -> list[tuple[int, bool, int, str]]:
    """Each drawn state of the bar with a total: (done, estimated, total, remaining)."""
    found = []
    for part in re.split(r"[\r\n]", text):
        match = _FRAME.search(part)
        if match:
            done, tilde, total, _elapsed, remaining = match.groups()
            found.append((int(done), tilde == "~", int(total), remaining))
    return found


def last_frame(text: str) -> str:
    return [part for part in re.split(r"[\r\n]", text) if "it/s" in part or "row" in part][-1]


def test_a_csv_total_counts_rows_not_lines_and_invalid_rows_are_not_failed(
    tmp_path: Path, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=1000, per=1.0)
    source = write_trial_csv(tmp_path / "export.csv")
    assert source.read_text(encoding="utf-8").count("\n") > 780  # what the old total counted
    out = io.StringIO()
    watch = Watch(ProgressBar(stream=out))
    summary = import_into(
        sandbox, source, tmp_path / "r.csv", rate=1000, concurrency=5, progress=watch
    )
    assert summary.by_status == {Status.SUCCESS: ROWS - INVALID, Status.INVALID: INVALID}
    # While the file is read the total is estimated, never off by more than a tenth (the
    # line count was 27% over), and exact once the last row is read, before the run ends.
    estimates = [rows for rows, exact in watch.counts if not exact]
    assert estimates, watch.counts
    assert all(abs(rows - ROWS) <= ROWS / 10 for rows in estimates), estimates
    assert watch.counts[-1] == (ROWS, True)
    # a total from the first fifth of the rows on (about a row every 300 bytes, none before
    # 32 KiB are read, and the reader runs up to 25 rows ahead here)
    assert watch.events[: watch.events.index("counted")].count("settled") < ROWS / 5
    shown = frames(out.getvalue())
    assert shown and all(abs(total - ROWS) <= ROWS / 10 for _, _, total, _ in shown), shown
    assert shown[-1][:3] == (ROWS, False, ROWS)
    final = last_frame(out.getvalue())
    assert "100%" in final
    assert f"ok={ROWS - INVALID}, failed=0, invalid={INVALID}" in final, final


def test_an_xlsx_has_the_sheets_row_count_and_an_eta_from_the_start(
    tmp_path: Path, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=1000, per=1.0)
    source = write_trial_xlsx(tmp_path / "export.xlsx")
    out = io.StringIO()
    watch = Watch(ProgressBar(stream=out))
    summary = import_into(
        sandbox, source, tmp_path / "r.csv", rate=1000, concurrency=5, progress=watch
    )
    assert summary.by_status[Status.INVALID] == INVALID
    assert watch.counts == [(ROWS, True)]  # told once, before the first row settles
    assert watch.events[:2] == ["started", "counted"]
    shown = frames(out.getvalue())
    assert shown and all(total == ROWS and not estimated for _, estimated, total, _ in shown)
    assert any(remaining.strip() not in ("", "?") for *_, remaining in shown[1:-1]), shown
    assert shown[-1][:3] == (ROWS, False, ROWS)


def test_an_interrupted_run_shows_where_it_stopped_and_a_resume_ends_at_the_total(
    tmp_path: Path, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=1000, per=1.0)
    source, results = write_trial_csv(tmp_path / "export.csv"), tmp_path / "r.csv"

    def ctrl_c_at_row_100(settled: int) -> None:
        if settled == 100:
            os.kill(os.getpid(), signal.SIGINT)  # the run's own handler takes it (main thread)

    out = io.StringIO()
    watch = Watch(ProgressBar(stream=out), on_settled=ctrl_c_at_row_100)
    summary = import_into(sandbox, source, results, rate=1000, concurrency=5, progress=watch)
    assert summary.stop_reason is StopReason.INTERRUPTED
    recorded = len(read_results(results))
    assert 100 <= recorded < ROWS
    stops = [event for event in watch.events if event.startswith("stopping")]
    assert len(stops) == 1 and stops[0].endswith(" Ctrl-C"), watch.events
    assert re.search(
        r"stopping: finishing \d+ calls? in flight; Ctrl-C again to stop now\n", out.getvalue()
    ), out.getvalue()
    done, _estimated, total, _ = frames(out.getvalue())[-1]
    assert done == recorded  # the rows with an outcome: where it stopped...
    assert abs(total - ROWS) <= ROWS / 10  # ...of about the file's rows, not done/done
    assert "100%" not in last_frame(out.getvalue())

    first_ok = sum(line["status"] == "success" for line in read_results(results))
    again = io.StringIO()
    summary = import_into(sandbox, source, results, rate=1000, concurrency=5,
                          progress=ProgressBar(stream=again))  # fmt: skip
    assert summary.exit_status is ExitStatus.ROWS_FAILED  # the invalid rows
    assert frames(again.getvalue())[-1][:3] == (ROWS, False, ROWS)
    final = last_frame(again.getvalue())  # this run's outcomes; the rows done before count
    assert f"ok={ROWS - INVALID - first_ok}, failed=0, invalid={INVALID}" in final, final


def test_a_resume_that_reads_from_part_way_still_counts_the_whole_file(
    tmp_path: Path, sandbox_thread, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importer.reader import delimited

    monkeypatch.setattr(delimited, "_FIRST_POSITION_EVERY", 64)  # positions in a small file
    sandbox = sandbox_thread(rate=1000, per=1.0)
    source, results = write_trial_csv(tmp_path / "e.csv", bad_dates=False), tmp_path / "r.csv"
    import_into(sandbox, source, results, rate=1000, concurrency=5, limit=300)
    started_at: list[int] = []
    read_from = delimited._CsvInput._iter_rows_from

    def spy(self: Any, start: Any) -> Any:
        started_at.append(start.row)
        return read_from(self, start)

    monkeypatch.setattr(delimited._CsvInput, "_iter_rows_from", spy)
    out = io.StringIO()
    watch = Watch(ProgressBar(stream=out))
    summary = import_into(sandbox, source, results, rate=1000, concurrency=5, progress=watch)
    assert summary.exit_status is ExitStatus.SUCCESS, summary.to_text()
    assert started_at and started_at[0] > 200  # the rows before were never read
    estimates = [rows for rows, exact in watch.counts if not exact]
    assert estimates and all(abs(rows - ROWS) <= ROWS / 10 for rows in estimates), estimates
    assert watch.counts[-1] == (ROWS, True)
    assert frames(out.getvalue())[-1][:3] == (ROWS, False, ROWS)


def test_validate_ends_the_bar_at_the_row_count(tmp_path: Path) -> None:
    source = write_trial_csv(tmp_path / "export.csv")
    out = io.StringIO()
    summary = validate_file(source, EXAMPLE_MAPPING, progress=ProgressBar(stream=out))
    assert (summary.rows, summary.invalid) == (ROWS, INVALID)
    assert frames(out.getvalue())[-1][:3] == (ROWS, False, ROWS)


@pytest.mark.parametrize(
    "rows_read, position, expected",
    [
        (100, None, None),  # a pipe: no estimate
        (100, (20_000, 100_000), None),  # too little read to say
        (128, (36_864, 147_456), 576),  # 4.5 blocks: half a block taken off what was read
    ],
)
def test_estimate_rows(rows_read: int, position: Any, expected: int | None) -> None:
    assert estimate_rows(rows_read, position) == expected


# ---- Ctrl-C on a real process ---------------------------------------------------------------


def hold_answers(sandbox: Any, after: int = 0) -> tuple[threading.Event, list[float]]:
    """Hold every CreateCustom answer after the first ``after`` until the event is set; the
    list gets one entry per call held, so a test can wait for calls in flight."""
    import asyncio

    release, held = threading.Event(), []
    dispatch = sandbox._dispatch
    arrived = [0]

    async def holding(*args: Any, **kwargs: Any) -> Any:
        arrived[0] += 1
        if arrived[0] > after:
            held.append(time.monotonic())
            while not release.is_set():
                await asyncio.sleep(0.01)
        return await dispatch(*args, **kwargs)

    sandbox._dispatch = holding
    return release, held


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def lines_of(stream: Any) -> queue.Queue[str]:
    """The lines of a child's pipe as they come, read by a thread."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def next_line_with(lines: queue.Queue[str], text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        if text in line:
            return line


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(
    "sig, again", [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")], ids=["INT", "TERM"]
)
def test_the_first_ctrl_c_says_at_once_how_many_calls_it_waits_for(
    tmp_path: Path, sandbox_thread, sig: signal.Signals, again: str
) -> None:
    sandbox = sandbox_thread(rate=3, per=1.0)
    release, held = hold_answers(sandbox)  # the first three calls stay in flight
    results = tmp_path / "r.csv"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "importer",
            "run",
            str(write_trial_csv(tmp_path / "e.csv")),
            "-m",
            str(EXAMPLE_MAPPING),
            "--host",
            sandbox.base_url,
            "--rate",
            "3",
            "--per",
            "1",
            "--concurrency",
            "3",
            "--no-preflight",
            "--results",
            str(results),
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **KEYS_ENV},
    )
    try:
        errors = lines_of(proc.stderr)
        wait_for(lambda: len(held) == 3, "three calls in flight")
        proc.send_signal(sig)
        # Said while the three answers are still held: at once, not when they come.
        line = next_line_with(errors, "stopping")
        assert line == f"stopping: finishing 3 calls in flight; {again} again to stop now\n"
        assert proc.poll() is None
    finally:
        release.set()
    out = proc.stdout.read() if proc.stdout else ""
    assert proc.wait(timeout=30) == ExitStatus.INTERRUPTED, out
    statuses = [line["status"] for line in read_results(results)]
    assert statuses.count("success") == 3 and set(statuses) <= {"success", "invalid"}
    assert len(held) == 3  # nothing was sent after the stop


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pseudo-terminal")
def test_in_a_terminal_the_bar_shows_the_stop_and_ends_where_it_stopped(
    tmp_path: Path, sandbox_thread
) -> None:
    import fcntl
    import pty
    import select
    import struct
    import termios

    sandbox = sandbox_thread(rate=1000, per=1.0)
    release, held = hold_answers(sandbox, after=300)
    results = tmp_path / "r.csv"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "importer",
            "run",
            str(write_trial_csv(tmp_path / "e.csv")),
            "-m",
            str(EXAMPLE_MAPPING),
            "--host",
            sandbox.base_url,
            "--rate",
            "1000",
            "--per",
            "1",
            "--concurrency",
            "5",
            "--no-preflight",
            "--results",
            str(results),
        ],  # fmt: skip
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "PYTHONPATH": str(ROOT), **KEYS_ENV, "COLUMNS": "160"},
        close_fds=True,
    )
    os.close(slave)
    screen = bytearray()

    def read_available(timeout: float) -> bool:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        screen.extend(chunk)
        return bool(chunk)

    try:
        deadline = time.monotonic() + 30
        while len(held) < 5:  # 300 answered, five calls held in flight
            assert time.monotonic() < deadline, "the calls never came"
            read_available(0.02)
        proc.send_signal(signal.SIGINT)
        while b"stopping:" not in screen:
            assert time.monotonic() < deadline, screen.decode(errors="replace")
            read_available(0.05)
    finally:
        release.set()
    while read_available(1.0) and proc.poll() is None:
        pass
    while read_available(0.2):
        pass
    assert proc.wait(timeout=30) == ExitStatus.INTERRUPTED
    os.close(master)
    text = screen.decode("utf-8", errors="replace")
    assert "stopping: finishing 5 calls in flight; Ctrl-C again to stop now" in text
    done, _estimated, total, _ = frames(text)[-1]
    recorded = [line["status"] for line in read_results(results)]
    assert done == len(recorded) and recorded.count("success") == 305  # 300 and the 5 held
    assert abs(total - ROWS) <= ROWS / 10
    bar_line = [part for part in re.split(r"[\r\n]", text) if f"{done}/" in part][-1]
    assert "100%" not in bar_line and "invalid=" in bar_line, bar_line
