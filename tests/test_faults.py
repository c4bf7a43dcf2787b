"""The fault suite: the whole importer against a faulty sandbox, over loopback.

Whatever the network and LeadSquared do (500s with and without an MX body, HTTP 200 errors,
throttling as 429/403/200, proxy pages, connections dropped before or after the call was
processed, a racy upsert) and however often the importer is killed, these must hold:

* every input row ends with exactly one final status in the results file, none missing;
* a ``success`` row has exactly one activity in the sandbox, the one it reports;
* a ``failed`` or ``invalid`` row has none; an ``unknown`` row has at most one (its call may
  have landed), so activities == success + a subset of unknown;
* no lead is created twice, even though the sandbox's upsert races (per-key ordering).

Each row's activity note carries a tag with its row number, so activities map back to rows.
"""

from __future__ import annotations

import csv
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from importer import run_import
from importer.results.status import FINAL_STATUSES, Status
from importer.sandbox import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, FaultConfig, SandboxThread

from .conftest import EXAMPLE_MAPPING, ROOT, SANDBOX_KEYS, read_results

# Scaled limits: 20 calls per 0.2 s is as fast as 100 per second, and a throttle penalty
# (one window, doubling) costs 0.2 s instead of 5 s.
RATE, PER = 20, 0.2
BULK_RATE = 6  # bulk calls per PER (they count against RATE too, as by default)
MAX_ATTEMPTS = 4

MIXED = (
    "latency=0.01,jitter=0.01,error_500_plain=0.06,error_500_mx=0.02,error_200=0.02,"
    "throttle_429=0.02,throttle_403=0.02,throttle_200=0.02,proxy_502=0.04,"
    "drop_before=0.03,drop_after=0.03,nonatomic_upsert,upsert_pause=0.02"
)
COLUMNS = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "city",
    "kyc_status",
    "visited_at",
    "amount",
    "product",
    "notes",
]
_TAG = re.compile(r"\btag(\d+)$")


def write_input(path: Path, rows: int, keys: int) -> dict[int, str]:
    """``rows`` data rows over ``keys`` emails (mapping: mappings/example.yaml).

    Every 37th row has an unreadable date (``invalid``, never sent) and every 41st a KYC
    status the sandbox refuses (``failed``, permanent). Returns row number -> email.
    """
    expected: dict[int, str] = {}
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for i in range(rows):
            row = i + 2  # as a spreadsheet numbers it: the header is row 1
            email = f"key{i % keys}@example.com"
            expected[row] = email
            writer.writerow(
                [
                    f"First{i}",
                    "Last",
                    email,
                    "",
                    "Pune",
                    "Maybe" if i % 41 == 40 else "Pending",
                    "99/99/2024 10:00" if i % 37 == 36 else "01/05/2024 15:00",
                    str(100 + i),
                    "Widget",
                    f"tag{row}",
                ]
            )
    return expected


def activities_by_row(activities: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    by_row: dict[int, list[dict[str, Any]]] = {}
    for activity in activities:
        match = _TAG.search(activity["ActivityNote"])
        assert match, activity["ActivityNote"]
        by_row.setdefault(int(match.group(1)), []).append(activity)
    return by_row


def check_invariants(
    lines: list[dict[str, str]], expected: dict[int, str], snapshot: dict[str, Any]
) -> dict[str, set[str]]:
    """Assert the invariants of the module docstring; return the activity ids by status."""
    rows = [int(line["row"]) for line in lines]
    assert sorted(rows) == sorted(expected), "every row has exactly one line, none missing"
    assert len(rows) == len(set(rows))
    statuses = Counter(line["status"] for line in lines)
    assert set(statuses) <= set(FINAL_STATUSES) - {"skipped"}, statuses

    landed = activities_by_row(snapshot["activities"])
    ids: dict[str, set[str]] = {status: set() for status in statuses}
    for line in lines:
        row, status = int(line["row"]), line["status"]
        got = landed.get(row, [])
        if status == "success":
            assert [a["Id"] for a in got] == [line["activity_id"]], line
        elif status == "unknown":
            assert len(got) <= 1, f"row {row} ({status}) landed {len(got)} times"
        else:
            assert got == [], f"row {row} is {status} but landed {len(got)} times"
        ids[status].update(a["Id"] for a in got)
    # activities == success + a subset of unknown, as a count too
    assert len(snapshot["activities"]) == len(ids["success"]) + len(ids.get("unknown", set()))
    assert len(ids.get("unknown", set())) <= statuses["unknown"]
    return ids


def duplicate_leads(runner: SandboxThread) -> int:
    return runner.call(runner.sandbox.duplicate_leads)


@pytest.fixture
def faulty_sandbox() -> Iterator[Any]:
    """Start a sandbox thread with the given fault spec; stopped after the test."""
    threads: list[SandboxThread] = []

    def start(spec: str) -> SandboxThread:
        thread = SandboxThread(
            rate=RATE, per=PER, bulk_rate=BULK_RATE, faults=FaultConfig.from_spec(spec)
        )
        thread.__enter__()
        threads.append(thread)
        return thread

    yield start
    for thread in threads:
        thread.stop()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mixed_faults_every_row_one_status_nothing_doubled(
    faulty_sandbox, tmp_path: Path, seed: int
) -> None:
    source = tmp_path / "leads.csv"
    expected = write_input(source, rows=200, keys=80)
    runner = faulty_sandbox(f"{MIXED},seed={seed}")
    results = tmp_path / "r.csv"
    summary = run_import(
        source,
        EXAMPLE_MAPPING,
        results=results,
        host=runner.sandbox.base_url,
        credentials=SANDBOX_KEYS,
        rate=RATE,
        per=PER,
        max_attempts=MAX_ATTEMPTS,
        reconcile=False,  # what one run's answers make of the rows (lookups: the kill -9 test)
    )
    snapshot = runner.snapshot()
    lines = read_results(results)
    ids = check_invariants(lines, expected, snapshot)
    calls = [c for c in snapshot["calls"] if c["path"].lower().endswith("createcustom")]

    # Not vacuous: every kind of fault happened, and most rows still got through.
    faults = Counter(c["fault"] for c in calls)
    assert set(faults) >= {"", "error_500_plain", "drop_before", "drop_after", "proxy_502"}
    statuses = Counter(line["status"] for line in lines)
    assert statuses["success"] >= 140 and statuses["invalid"] == 5

    # Within one run the unknown rows are exactly the dropped calls, and their activities
    # exactly those the drop_after calls created.
    dropped = [c for c in calls if c["fault"] in ("drop_before", "drop_after")]
    assert statuses["unknown"] == len(dropped)
    assert ids.get("unknown", set()) == {c["activity_id"] for c in dropped if c["activity_id"]}
    # Each call is counted in some row's attempts; summary and file agree.
    assert sum(int(line["attempts"]) for line in lines) == len(calls)
    assert dict(summary.by_status) == dict(statuses)
    assert duplicate_leads(runner) == 0
    assert runner.sandbox.max_in_window(PER) <= RATE


LOST_FAULTS = {"drop_before", "drop_after", "html_200", "empty_200", "truncated_200"}
"""Faults whose answer says nothing of what the call did: to an activity call, its rows are
``unknown`` (drop_before: the server never processed it, but the client cannot know)."""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mixed_faults_in_bulk_mode_every_row_one_status_nothing_doubled(
    faulty_sandbox, tmp_path: Path, seed: int
) -> None:
    """The same fault mix on bulk calls (a lost or garbled answer to an activity call leaves
    its batch unknown; to a lead call, the upsert is sent again), plus records refused inside
    calls that otherwise succeed."""
    source = tmp_path / "leads.csv"
    expected = write_input(source, rows=200, keys=80)
    mix = MIXED.replace("drop_after=0.03", "drop_after=0.06")
    runner = faulty_sandbox(f"{mix},html_200=0.04,record_error=0.03,seed={seed}")
    results = tmp_path / "r.csv"
    summary = run_import(
        source,
        EXAMPLE_MAPPING,
        results=results,
        host=runner.sandbox.base_url,
        credentials=SANDBOX_KEYS,
        rate=RATE,
        per=PER,
        mode="bulk",
        batch_size=5,  # more calls, so every fault is drawn
        bulk_rate=BULK_RATE,
        max_attempts=MAX_ATTEMPTS,
        reconcile=False,  # what one run's answers make of the rows
    )
    snapshot = runner.snapshot()
    lines = read_results(results)
    ids = check_invariants(lines, expected, snapshot)
    bulk = runner.sandbox.bulk_calls()
    activity_calls = [c for c in bulk if "customactivity" in c.path.lower()]
    faults = Counter(c.fault for c in bulk)
    # Not vacuous (which call draws which fault depends on timing: kinds, not each one).
    assert len(set(faults) - {""}) >= 4, faults
    statuses = Counter(line["status"] for line in lines)
    assert statuses["success"] >= 100 and statuses["invalid"] == 5, statuses
    # Unknown rows are exactly those of activity calls whose answer was lost after they were
    # processed (or could not be read); their activities are the ones those calls created.
    lost = [c for c in activity_calls if c.fault in LOST_FAULTS]
    assert lost, "some activity call's answer was lost"
    assert statuses["unknown"] == sum(c.records for c in lost)
    assert ids.get("unknown", set()) == {a for c in lost for a in c.activity_ids}
    refused = [line for line in lines if line["error_type"] == "MXUnknownException"]
    assert refused, "record_error made some records fail inside successful calls"
    assert dict(summary.by_status) == dict(statuses)
    assert summary.mode == "bulk" and summary.bulk_calls == len(bulk)
    assert duplicate_leads(runner) == 0 and snapshot["bulk_same_key_calls"] == 0
    assert runner.sandbox.max_in_window(PER) <= RATE
    assert runner.sandbox.max_bulk_in_window() <= BULK_RATE


def test_many_rows_per_key_make_no_duplicate_leads_under_a_racy_upsert(
    faulty_sandbox, tmp_path: Path
) -> None:
    source = tmp_path / "leads.csv"
    expected = write_input(source, rows=50, keys=5)
    runner = faulty_sandbox("nonatomic_upsert,upsert_pause=0.05,latency=0.01,jitter=0.01,seed=4")
    results = tmp_path / "r.csv"
    summary = run_import(
        source,
        EXAMPLE_MAPPING,
        results=results,
        host=runner.sandbox.base_url,
        credentials=SANDBOX_KEYS,
        rate=RATE,
        per=PER,
        max_attempts=MAX_ATTEMPTS,
        reconcile=False,  # what one run's answers make of the rows (lookups: the kill -9 test)
    )
    snapshot = runner.snapshot()
    check_invariants(read_results(results), expected, snapshot)
    assert summary.by_status["success"] == 48  # rows 38 (invalid date) and 42 (bad KYC)
    assert duplicate_leads(runner) == 0
    assert len(snapshot["leads"]) == 5
    # The rows of a key landed in file order.
    order: dict[str, list[int]] = {}
    lead_email = {lead_id: lead["EmailAddress"] for lead_id, lead in snapshot["leads"].items()}
    for activity in sorted(snapshot["activities"], key=lambda a: a["CreatedAt"]):
        row = int(_TAG.search(activity["ActivityNote"]).group(1))  # type: ignore[union-attr]
        order.setdefault(lead_email[activity["LeadId"]], []).append(row)
    assert all(rows == sorted(rows) for rows in order.values()), order


# ---- kill -9 ---------------------------------------------------------------------------------


def final_lines(path: Path) -> int:
    """Complete journal lines with a final status (a torn last line does not count)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return 0
    complete = text[: text.rfind("\n") + 1].splitlines()[1:]
    return sum(1 for cells in csv.reader(complete) if len(cells) > 2 and cells[2] != Status.SENDING)


def wait_until(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")
@pytest.mark.parametrize(
    ("seed", "token", "mode"),
    [
        (9, True, "single"),
        (17, True, "single"),
        (23, True, "single"),
        (9, False, "single"),
        (9, True, "bulk"),
        (17, True, "bulk"),
        (23, True, "auto"),
    ],
    ids=str,
)
def test_kill_9_three_times_then_resume_keeps_every_invariant(
    faulty_sandbox, tmp_path: Path, seed: int, token: bool, mode: str
) -> None:
    """Three kill -9s mid-run, then a plain rerun: every row ends settled, none unknown (the
    rerun looks up the rows the kills and the lost answers left unknown, by row token or, the
    rows' contents being unique, by content), each success row's activity exists exactly once,
    no other row's does, and no lead was created twice."""
    rng = random.Random(2024 + seed)
    source = tmp_path / "leads.csv"
    expected = write_input(source, rows=300, keys=60)
    spec = f"{MIXED},seed={seed}"
    if mode != "single":  # lost and garbled answers of activity calls, refused records
        spec = (
            spec.replace("drop_after=0.03", "drop_after=0.06") + ",html_200=0.04,record_error=0.02"
        )
    runner = faulty_sandbox(spec)
    results = tmp_path / "r.csv"
    mapping = EXAMPLE_MAPPING
    if token:
        mapping = tmp_path / "token.yaml"
        mapping.write_text(
            EXAMPLE_MAPPING.read_text(encoding="utf-8").replace(
                "\noptions:\n", "\noptions:\n  row_token: mx_Custom_5\n"
            ),
            encoding="utf-8",
        )
    command = _command(source, results, runner.sandbox.base_url, mapping, mode=mode)
    env = _env()

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            command,
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    kills = 0
    for _ in range(3):
        before = final_lines(results)
        settled = {int(line["row"]) for line in _latest(results) if line["status"] in {"success"}}
        remaining = len(expected) - len(settled)
        target = before + rng.randint(10, max(11, remaining // 3))
        proc = start()
        try:
            wait_until(
                lambda p=proc, t=target: final_lines(results) >= t or p.poll() is not None,
                "the importer to make progress",
            )
            assert proc.poll() is None, f"finished before the kill: {proc.communicate()}"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            kills += 1
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        # The server finishes calls whose client died; resume once they have landed, as a
        # rerun minutes later would.
        wait_until(lambda: runner.call(lambda: runner.sandbox.in_flight) == 0, "a quiet sandbox")

    proc = start()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 1), (proc.returncode, out, err)
    assert kills == 3

    snapshot = runner.snapshot()
    lines = read_results(results)
    check_invariants(lines, expected, snapshot)
    statuses = Counter(line["status"] for line in lines)
    assert statuses["success"] >= 150 and statuses["invalid"] == 8, statuses
    assert statuses["unknown"] == 0, [line for line in lines if line["status"] == "unknown"]
    # Not vacuous: lost answers and the kills' calls in flight were found in LeadSquared.
    assert any(line["error_type"] == "reconciled" for line in lines)
    assert duplicate_leads(runner) == 0
    assert runner.sandbox.max_in_window(PER) <= RATE
    if mode != "single":  # not vacuous: batches went out, each of distinct keys
        assert runner.sandbox.bulk_calls() and snapshot["bulk_same_key_calls"] == 0
        assert runner.sandbox.max_bulk_in_window() <= BULK_RATE


def _latest(path: Path) -> list[dict[str, str]]:
    """The latest complete line of each row of a journal (possibly torn at the end)."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]
    latest: dict[str, dict[str, str]] = {}
    for line in csv.DictReader(complete.splitlines()):
        latest[line["row"]] = line
    return list(latest.values())


# ---- the lock file deleted, the disk full -----------------------------------------------------


def _command(
    source: Path, results: Path, host: str, mapping: Path = EXAMPLE_MAPPING, mode: str = "single"
) -> list[str]:
    """``lsq-import run`` at the fault suite's limits; a lost answer's row is looked up 50 ms
    later, not after the default 10 s."""
    return [
        sys.executable,
        "-m",
        "importer",
        "run",
        str(source),
        "-m",
        str(mapping),
        "--results",
        str(results),
        "--host",
        host,
        "--rate",
        str(RATE),
        "--per",
        str(PER),
        "--max-attempts",
        str(MAX_ATTEMPTS),
        "--settle-delay",
        "0.05",
        "--quiet",
        "--mode",
        mode,
        "--bulk-rate",
        str(BULK_RATE),
        "--batch-size",  # batches of 5: more bulk calls, so more of them draw a fault
        "5",
    ]


def _env() -> dict[str, str]:
    env = {
        **os.environ,
        "LSQ_ACCESS_KEY": DEFAULT_ACCESS_KEY,
        "LSQ_SECRET_KEY": DEFAULT_SECRET_KEY,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("LSQ_HOST", None)
    return env


def test_deleting_the_lock_mid_run_under_faults_lets_no_second_run_in(
    faulty_sandbox, tmp_path: Path
) -> None:
    source, results = tmp_path / "leads.csv", tmp_path / "r.csv"
    expected = write_input(source, rows=200, keys=60)
    runner = faulty_sandbox(f"{MIXED},seed=5")
    command = _command(source, results, runner.sandbox.base_url)
    first = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: final_lines(results) >= 30 or first.poll() is not None, "progress")
        assert first.poll() is None, "finished before the lock was deleted"
        (tmp_path / "r.csv.lock").unlink()
        second = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stdout + second.stderr
        assert "in use by another lsq-import run" in second.stderr
    finally:
        out, err = first.communicate(timeout=120)
    assert first.returncode in (0, 1), (out, err)
    check_invariants(read_results(results), expected, runner.snapshot())
    assert duplicate_leads(runner) == 0


def test_a_disk_that_fills_mid_run_under_faults_stops_cleanly_and_resumes(
    faulty_sandbox, tmp_path: Path
) -> None:
    import resource

    source, results = tmp_path / "leads.csv", tmp_path / "r.csv"
    expected = write_input(source, rows=200, keys=60)
    runner = faulty_sandbox(f"{MIXED},seed=6")
    # The ledger could not even be created under the limit: this test is the results file's.
    command = [*_command(source, results, runner.sandbox.base_url), "--no-ledger"]

    def small_disk() -> None:  # in the child: files may not grow past 12 KiB (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (12288, 12288))

    full = subprocess.run(
        command, env=_env(), capture_output=True, text=True, timeout=120, preexec_fn=small_disk
    )
    assert full.returncode == 4, full.stdout + full.stderr
    assert "cannot write the results file (File too large)" in full.stdout
    assert "Traceback" not in full.stderr
    wait_until(lambda: runner.call(lambda: runner.sandbox.in_flight) == 0, "a quiet sandbox")
    again = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode in (0, 1), again.stdout + again.stderr
    lines = read_results(results)
    check_invariants(lines, expected, runner.snapshot())
    assert Counter(line["status"] for line in lines)["success"] >= 120
    assert duplicate_leads(runner) == 0
    assert runner.sandbox.max_in_window(PER) <= RATE
