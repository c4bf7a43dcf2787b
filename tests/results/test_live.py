"""``lsq-import status``: a running import's state, read without disturbing it."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from importer.cli import cli
from importer.exceptions import ResultsFileError
from importer.results import journal as journal_module
from importer.results.fingerprint import Fingerprints
from importer.results.journal import COLUMNS
from importer.results.live import RunState, read_status
from importer.results.lock import ResultsLock

from ..conftest import EXAMPLE_MAPPING, ROOT, SAMPLE_XLSX, SANDBOX_KEYS, import_into

T0 = 1_800_000_000  # a fixed "now" for the synthetic journals


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def keys_env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key,
        "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key,
    }


def start_run(source: Path, results: Path, host: str, rate: int) -> subprocess.Popen[str]:
    """``python -m importer run`` against ``host`` at ``rate`` calls a second, keys in env."""
    return subprocess.Popen(
        [
            sys.executable, "-m", "importer", "run", str(source), "-m", str(EXAMPLE_MAPPING),
            "--results", str(results), "--host", host, "--rate", str(rate), "--per", "1",
            "--quiet",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=keys_env(),
    )  # fmt: skip


def journal_counts(data: bytes) -> tuple[Counter[str], int]:
    """(rows by latest status, rows whose latest line is ``sending``) of a journal's bytes,
    parsed independently of lsq-import (its complete lines only)."""
    complete = data[: data.rfind(b"\n") + 1].decode("utf-8")
    latest: dict[int, str] = {}
    for cells in list(csv.reader(io.StringIO(complete)))[1:]:
        latest[int(cells[0])] = cells[2]
    counts = Counter(latest.values())
    return Counter({k: v for k, v in counts.items() if k != "sending"}), counts["sending"]


def status_counts(path: Path) -> tuple[Counter[str], int]:
    found = read_status(path)
    return Counter({str(k): v for k, v in found.by_status.items() if v}), found.in_flight


def write_journal(path: Path, lines: list[list[object]], *, tail: str = "") -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(lines)
        handle.write(tail)


def line(row: int, status: str, attempts: int, when: float, key: str = "") -> list[object]:
    key = key or f"k{row}@example.com"
    return [row, key, status, "", "", "", "", "", attempts, iso(when)]


def hold_lock(results: Path, *, pid: int, host: str, since: float) -> None:
    """A lock file as a run writes it (what status reads; nothing holds the flock)."""
    owner = {"pid": pid, "host": host, "since": iso(since)}
    Path(f"{results}.lock").write_text(json.dumps(owner) + "\n")


def save_meta(results: Path, **fields: object) -> None:
    Fingerprints("in.csv", "sha256:x", "m.yaml", "sha256:y", **fields).save(results)  # type: ignore[arg-type]


def test_status_while_a_slow_run_holds_the_file_agrees_with_its_journal_and_does_not_slow_it(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    """Polled from before the run starts until after it ends: each status read between two
    identical reads of the journal gives exactly that journal's counts, and the run is not
    refused, slowed or throttled."""
    rows, rate = 30, 5
    sandbox = sandbox_thread(rate=rate, per=1.0)
    source, results = sample_rows(rows), tmp_path / "r.csv"
    agreed: list[tuple[Counter[str], int]] = []
    states: set[RunState] = set()
    problems: list[str] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            try:
                before = results.read_bytes()
                found = status_counts(results)
                after = results.read_bytes()
                states.add(read_status(results).state)
            except (FileNotFoundError, ResultsFileError):
                continue  # not started yet
            if before == after:  # nothing was written meanwhile: the same moment
                expected = journal_counts(before)
                if found != expected:
                    problems.append(f"status said {found}, the journal {expected}")
                agreed.append(found)
            done.wait(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        run = start_run(source, results, sandbox.base_url, rate)
        mid = None
        deadline = time.monotonic() + 60
        while run.poll() is None and time.monotonic() < deadline:
            if mid is None and results.exists() and results.read_bytes().count(b",success,") >= 8:
                mid = CliRunner().invoke(cli, ["status", str(results), "--json", "-"])
            time.sleep(0.02)
        out, err = run.communicate(timeout=60)
    finally:
        done.set()
        poller.join()
    assert run.returncode == 0, out + err
    assert not problems, problems[:3]
    midway = [c for c, flight in agreed if 0 < c["success"] + flight < rows]
    assert len(midway) >= 5, agreed  # many agreeing reads while the run was going
    assert RunState.RUNNING in states
    assert mid is not None and mid.exit_code == 0, mid and mid.output
    seen = json.loads(mid.output)
    assert seen["state"] == "running" and seen["owner"]["pid"] == run.pid
    assert seen["owner"]["host"] == socket.gethostname() and seen["owner"]["since"]
    assert 8 <= seen["by_status"]["success"] < rows
    # The run was not held back: every row succeeded once, never throttled, and its calls
    # kept the limit's pace (about 5 s for 30 calls at 5 a second, the first 5 at once).
    assert sum(1 for c in sandbox.calls if c.http_status == 429) == 0
    assert len(sandbox.activities) == rows
    assert sandbox.max_in_window(1.0) <= rate
    arrivals = sandbox.arrivals()
    assert max(arrivals) - min(arrivals) < (rows - rate) / rate + 2.5
    final = read_status(results)
    assert final.state is RunState.NOT_RUNNING and final.owner is None
    assert final.by_status == Counter(success=rows) and final.complete


def test_status_of_a_finished_file(tmp_path: Path, sample_rows, sandbox_thread) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    results = tmp_path / "r.csv"
    import_into(sandbox, sample_rows(12), results)
    text = CliRunner().invoke(cli, ["status", str(results)])
    assert text.exit_code == 0, text.output
    assert text.output.splitlines()[:3] == [
        f"{results}: not running (no run holds it)",
        "12 of 12 rows (100%), complete: 12 success",
        "12 calls in all runs",
    ]
    assert "ETA" not in text.output and "rate" not in text.output
    found = CliRunner().invoke(cli, ["status", str(results), "--json"])
    assert found.exit_code == 0, found.output
    data = json.loads(found.output)
    assert data["state"] == "not_running" and data["owner"] is None
    assert data["rows"] == data["input_rows"] == 12 and data["input_rows_exact"] is True
    assert data["by_status"] == {
        "success": 12,
        "failed": 0,
        "invalid": 0,
        "skipped": 0,
        "unknown": 0,
    }
    assert data["not_reached"] == 0 and data["complete"] is True and data["calls"] == 12
    assert data["rate"] == {
        "window_seconds": None,
        "calls_per_minute": None,
        "rows_per_minute": None,
    }
    assert data["eta"] is None and data["eta_seconds"] is None
    assert data["host"] == sandbox.base_url and data["input"].endswith("leads.csv")
    # --json FILE writes the same keys and keeps the text on stdout.
    out = tmp_path / "status.json"
    both = CliRunner().invoke(cli, ["status", str(results), "--json", str(out)])
    assert both.exit_code == 0 and both.output == text.output
    assert set(json.loads(out.read_text())) == set(data)


def test_status_of_a_file_no_run_started_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "never.results.csv"
    result = CliRunner().invoke(cli, ["status", str(missing)])
    assert result.exit_code == 2
    assert result.output == (
        f"Error: {missing}: no such results file: no run has started with it (a run creates "
        "it when it starts); check the name, or the run's --results\n"
    )
    assert list(tmp_path.iterdir()) == []  # nothing created, not even a lock file


def test_status_refuses_a_file_that_is_not_a_results_file(tmp_path: Path) -> None:
    other = tmp_path / "leads.csv"
    other.write_text("first_name,email\nA,a@example.com\n")
    result = CliRunner().invoke(cli, ["status", str(other)])
    assert result.exit_code == 2
    assert "not an lsq-import results file" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")
def test_status_of_a_run_killed_with_sigkill_says_not_running(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(60), tmp_path / "r.csv"
    run = start_run(source, results, sandbox.base_url, rate=10)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and run.poll() is None:
            if results.exists() and results.read_bytes().count(b",success,") >= 5:
                break
            time.sleep(0.02)
        assert read_status(results).state is RunState.RUNNING
    finally:
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL
    result = CliRunner().invoke(cli, ["status", str(results)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{results}: not running (pid {run.pid} is gone")
    found = read_status(results)
    assert found.state is RunState.NOT_RUNNING and found.in_flight == 0
    assert found.owner is not None and found.owner.pid == run.pid and found.owner.alive is False
    # Its rows in flight are unknown now, as the run's rewrite would have said.
    counts, sending = journal_counts(results.read_bytes())
    expected = counts + Counter(unknown=sending)
    assert Counter({str(k): v for k, v in found.by_status.items() if v}) == expected
    assert found.to_dict()["rate"]["calls_per_minute"] is None


def test_status_names_a_run_on_another_host_without_guessing(tmp_path: Path) -> None:
    results = tmp_path / "r.csv"
    write_journal(results, [line(2, "success", 1, T0 - 5), line(3, "sending", 1, T0 - 1)])
    hold_lock(results, pid=4242, host="batch-host-7", since=T0 - 600)
    found = read_status(results, now=T0)
    assert found.state is RunState.OTHER_HOST and found.in_flight == 1
    assert found.to_text().splitlines()[0] == (
        f"{results}: held by pid 4242 on host batch-host-7 since 2027-01-15 07:50:00 UTC; "
        "whether it still runs can only be checked there"
    )
    assert found.to_dict()["owner"] == {
        "pid": 4242,
        "host": "batch-host-7",
        "since": "2027-01-15T07:50:00Z",
        "alive": None,
    }


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_a_pid_now_used_by_a_later_process_is_not_taken_for_the_run(tmp_path: Path) -> None:
    """The lock file of a run killed long ago names a pid that a process started since has
    got (here: this test's own): kill(pid, 0) succeeds, yet that is not the run."""
    results = tmp_path / "r.csv"
    write_journal(results, [line(2, "success", 1, T0)])
    hold_lock(results, pid=os.getpid(), host=socket.gethostname(), since=946684800)  # 2000
    found = read_status(results)
    assert found.state is RunState.NOT_RUNNING
    assert f"not running (pid {os.getpid()} is gone (its number now belongs" in found.to_text()


def test_rate_and_eta_come_from_the_last_minute_of_the_journal(tmp_path: Path) -> None:
    """An earlier run's rows (old times), then this run's: 90 rows in the last minute (one
    retried), a row in flight, a torn last line; 1000 rows in the input."""
    results = tmp_path / "r.csv"
    lines = [line(row, "success", 1, T0 - 7200) for row in range(2, 102)]  # 100 done before
    lines += [line(102, "failed", 2, T0 - 7200)]
    for i, row in enumerate(range(103, 193)):  # 90 new rows, one and a half a second
        when = T0 - 59 + i * 2 // 3
        lines += [line(row, "sending", 1, when), line(row, "success", 1, when)]
    lines += [line(102, "sending", 3, T0 - 2), line(102, "success", 3, T0 - 1)]  # a retry
    lines += [line(193, "sending", 1, T0), line(194, "skipped", 0, T0)]
    write_journal(results, lines, tail="195,k195@example.com,succ")
    hold_lock(results, pid=os.getpid(), host=socket.gethostname(), since=T0 - 3600)
    save_meta(results, input_rows=1000, host="https://api-in21.leadsquared.com")
    found = read_status(results, now=T0 + 0.5)
    assert found.state is RunState.RUNNING
    assert found.by_status == Counter(success=191, skipped=1) and found.in_flight == 1
    assert found.calls == 100 + 3 + 90 + 1
    assert (found.window_seconds, found.window_calls, found.window_rows) == (60.5, 92, 92)
    assert found.rows_per_minute == round(92 * 60 / 60.5, 1)
    assert found.not_reached == 1000 - 192 - 1
    assert found.eta_seconds == round(807 * 60 / found.rows_per_minute)
    data = found.to_dict()
    assert data["eta"] == iso(T0 + 0.5 + found.eta_seconds)
    assert data["last_recorded"] == iso(T0) and data["checked_at"] == iso(T0)
    text = found.to_text().splitlines()
    assert (
        text[1]
        == "192 of 1000 rows (19%): 191 success, 1 skipped; 1 in flight; 807 not reached yet"
    )
    assert text[3] == "last 60 s: 92 calls, 92 rows reached (91.2 calls, 91.2 rows a minute)"
    assert text[4].startswith(f"ETA {iso(T0 + found.eta_seconds).replace('T', ' ')[:-1]}")
    assert text[4].endswith("(in about 8 min) for the 807 rows not reached yet, at that rate")


@pytest.mark.parametrize(
    ("started_ago", "window"), [(30, 30.0), (5, None)], ids=["30 s ago", "5 s ago"]
)
def test_a_young_run_is_measured_since_it_started(
    tmp_path: Path, started_ago: int, window: float | None
) -> None:
    """The earlier run's lines of the last minute are not this run's rate; a run younger than
    10 s has no rate yet."""
    results = tmp_path / "r.csv"
    lines = [line(row, "success", 1, T0 - 50) for row in range(2, 32)]  # the run before
    lines += [line(row, "success", 1, T0 - 2) for row in range(32, 47)]  # this run's 15
    write_journal(results, lines)
    hold_lock(results, pid=os.getpid(), host=socket.gethostname(), since=T0 - started_ago)
    found = read_status(results, now=T0)
    assert found.window_seconds == window
    if window is None:
        assert found.rows_per_minute is None and found.eta_seconds is None
        assert "rate: not known yet (measured once the run has gone 10 s)" in found.to_text()
    else:
        assert found.rows_per_minute == 30.0


def test_a_quoted_key_and_rows_out_of_order_are_read_exactly(tmp_path: Path) -> None:
    results = tmp_path / "r.csv"
    write_journal(
        results,
        [
            line(5, "sending", 1, T0, key='Shah, "Ravi"'),
            line(3, "failed", 4, T0, key="a,b"),
            line(5, "unknown", 1, T0, key='Shah, "Ravi"'),
            line(2, "invalid", 0, T0),
            line(3, "sending", 5, T0, key="a,b"),
            line(3, "success", 5, T0, key="a,b"),
        ],
    )
    found = read_status(results, now=T0)
    assert found.by_status == Counter(success=1, unknown=1, invalid=1) and found.calls == 6


def test_status_takes_no_lock_and_changes_no_file(tmp_path: Path, monkeypatch) -> None:
    """Not even a shared flock: a run starting at that moment would be refused. And only
    read-only opens: every file beside the results is as it was, and nothing new appears."""
    results = tmp_path / "r.csv"
    write_journal(results, [line(2, "success", 1, T0), line(3, "sending", 1, T0)])
    save_meta(results, input_rows=10)
    with ResultsLock(results):  # this process is the run
        before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}

        def no_lock(*args: object) -> None:
            raise AssertionError("status took a lock")

        monkeypatch.setattr(fcntl, "flock", no_lock)
        monkeypatch.setattr(fcntl, "lockf", no_lock)
        found = read_status(results)
        monkeypatch.undo()
        after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert found.state is RunState.RUNNING and found.owner is not None
    assert found.owner.pid == os.getpid() and found.in_flight == 1
    assert after == before


def test_the_lock_file_says_when_the_run_started(tmp_path: Path) -> None:
    results = tmp_path / "r.csv"
    with ResultsLock(results):
        owner = json.loads(Path(f"{results}.lock").read_text())
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    started = datetime.strptime(owner["since"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(started.timestamp() - time.time()) < 5


def test_a_csv_runs_total_is_estimated_and_an_excel_sheets_exact(
    tmp_path: Path, sandbox_thread
) -> None:
    """A trial run over the first rows of a 600-row CSV (45 KB) notes the run's estimate of
    the total, as its progress bar had it; an Excel sheet's count is exact from the start."""
    sandbox = sandbox_thread(rate=1000, per=1.0)
    source = tmp_path / "big.csv"
    sample = (ROOT / "sample_data" / "leads.csv").read_text(encoding="utf-8-sig").splitlines()
    header, first = sample[0], sample[1]
    source.write_text(
        "\n".join([header, *(first.replace("meera.muller", f"m{i:04d}") for i in range(600))])
        + "\n"
    )
    results = tmp_path / "big.results.csv"
    import_into(sandbox, source, results, rate=1000, limit=400)
    found = read_status(results)
    assert not found.input_rows_exact and found.input_rows is not None
    assert abs(found.input_rows - 600) <= 60, found.input_rows  # a few per cent off
    assert f"400 of ~{found.input_rows} rows (" in found.to_text()
    assert "~: the run's estimate, from the share of the input's bytes read" in found.to_text()

    sheet = tmp_path / "sheet.results.csv"
    import_into(sandbox, SAMPLE_XLSX, sheet, rate=1000, limit=3)
    found = read_status(sheet)
    assert found.input_rows_exact and found.input_rows == 200 and found.not_reached == 197


def test_a_small_csv_before_its_end_has_no_total_and_says_so(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    results = tmp_path / "r.csv"
    import_into(sandbox, sample_rows(20), results, limit=5)  # 3 KB: too little to estimate
    found = read_status(results)
    assert found.input_rows is None and found.not_reached is None
    assert found.to_dict()["input_rows"] is None
    assert "the input's row count is not known yet" in found.to_text()


def test_memory_does_not_grow_with_the_journals_lines(tmp_path: Path, monkeypatch) -> None:
    """The same 3,000 rows recorded twice and eight times over: the peak is the same (3 bytes
    a row and a block of the file), not a line's worth more per line. (Blocks of 64 KiB here,
    so that both files are many blocks long and the test stays fast under tracemalloc.)"""
    monkeypatch.setattr(journal_module, "_BLOCK", 64 * 1024)
    peaks = []
    for passes in (2, 8):
        results = tmp_path / f"r{passes}.csv"
        with open(results, "w", encoding="utf-8") as handle:
            handle.write(",".join(COLUMNS) + "\n")
            for n in range(passes):
                status = "sending" if n % 2 == 0 else "failed"
                for row in range(2, 3_002):
                    handle.write(f"{row},k{row}@example.com,{status},,,,,,{n + 1},{iso(T0)}\n")
        assert results.stat().st_size > 4 * 64 * 1024
        tracemalloc.start()
        found = read_status(results, now=T0)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert found.by_status == Counter(failed=3_000) and found.calls == 3_000 * passes
    assert peaks[1] < peaks[0] + 64 * 1024, peaks
