"""Several lsq-import processes on one account and one ledger, under the sandbox's fault mix.

Three processes start together on three inputs that overlap (each activity of the master list
is in two of them), each with its own results file. Together they must post every activity at
most once (exactly once once reruns have settled what faults left), create no lead twice, and
stay, together, under the account's limit: each is given the whole limit, and only the pacing
they share through the ledger keeps the three under it. Then the same with one of them killed
with SIGKILL mid-run and run again. Each on both ledgers: an SQLite file (one machine) and
PostgreSQL (team mode: the claims and the shared slot schedule in the database).
"""

from __future__ import annotations

import csv
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ..conftest import read_results
from ..test_faults import (
    COLUMNS,
    MIXED,
    PER,
    RATE,
    _command,
    _env,
    final_lines,
    wait_until,
)

ACTIVITIES = 240
KEYS = 60
_TAG = re.compile(r"\btag(\d+)$")
SLICES = {
    "a": list(range(0, 160)),
    "b": list(range(80, 240)),
    "c": list(range(0, 80)) + list(range(160, 240)),
}


def record(k: int) -> list[str]:
    """Activity ``k`` of the master list; every 37th has an unreadable date (invalid), every
    41st a KYC status the sandbox refuses (failed)."""
    return [
        f"First{k}",
        "Last",
        f"key{k % KEYS}@example.com",
        "",
        "Pune",
        "Maybe" if k % 41 == 40 else "Pending",
        "99/99/2024 10:00" if k % 37 == 36 else "01/05/2024 15:00",
        str(100 + k),
        "Widget",
        f"tag{k}",
    ]


VALID = {k for k in range(ACTIVITIES) if k % 37 != 36 and k % 41 != 40}


def write_inputs(folder: Path) -> dict[str, Path]:
    paths = {}
    for name, ks in SLICES.items():
        path = folder / f"{name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(COLUMNS)
            writer.writerows(record(k) for k in ks)
        paths[name] = path
    return paths


def tag_of_row(name: str, row: int) -> int:
    return SLICES[name][row - 2]


def landed(snapshot: dict[str, Any]) -> Counter[int]:
    return Counter(int(_TAG.search(a["ActivityNote"]).group(1)) for a in snapshot["activities"])  # type: ignore[union-attr]


def check(runner: Any, results: dict[str, Path]) -> Counter[str]:
    """Every activity at most once, each line consistent with what landed; returns the
    statuses over all results files."""
    snapshot = runner.snapshot()
    count = landed(snapshot)
    twice = {k: n for k, n in count.items() if n > 1}
    assert not twice, f"activities posted more than once: {twice}"
    ids = {int(_TAG.search(a["ActivityNote"]).group(1)): a["Id"] for a in snapshot["activities"]}  # type: ignore[union-attr]
    statuses: Counter[str] = Counter()
    for name, path in results.items():
        lines = {int(line["row"]): line for line in read_results(path)}
        assert sorted(lines) == list(range(2, 2 + len(SLICES[name]))), name
        for row, line in lines.items():
            k = tag_of_row(name, row)
            statuses[f"{line['status']}:{line['error_type']}"] += 1
            if line["status"] == "success":
                assert ids.get(k) == line["activity_id"], (name, line)
            elif line["status"] == "skipped":
                assert line["error_type"] == "already imported", (name, line)
                assert count[k] == 1, (name, line)
            elif line["status"] == "invalid":
                assert k not in count
    assert runner.call(runner.sandbox.duplicate_leads) == 0
    assert runner.sandbox.max_in_window(PER) <= RATE
    return statuses


def start(command: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command, env=_env(), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def commands(paths: dict[str, Path], results: dict[str, Path], host: str, ledger: str) -> dict:
    return {
        name: [*_command(paths[name], results[name], host), "--ledger", ledger] for name in paths
    }


def finish_all(runner: Any, cmds: dict[str, list[str]], cwd: Path) -> None:
    """Rerun each (one after the other) until none has a row left to settle: what the next
    night's runs do."""
    for _ in range(3):
        for command in cmds.values():
            done = subprocess.run(
                command, env=_env(), cwd=cwd, capture_output=True, text=True, timeout=120
            )
            assert done.returncode in (0, 1), done.stdout + done.stderr


def completeness(runner: Any) -> None:
    count = landed(runner.snapshot())
    missing = VALID - set(count)
    assert not missing, f"valid activities never posted: {sorted(missing)}"
    assert set(count) <= VALID


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")
@pytest.mark.parametrize(
    ("ledger_at", "seed"),
    # Three seeds through PostgreSQL (team mode's acceptance), two through SQLite.
    [("sqlite", 31), ("sqlite", 32), ("postgres", 31), ("postgres", 32), ("postgres", 33)],
    indirect=["ledger_at"],
)
def test_three_processes_on_one_ledger_post_each_activity_once(
    faulty_sandbox, tmp_path: Path, seed: int, ledger_at: str
) -> None:
    paths = write_inputs(tmp_path)
    runner = faulty_sandbox(f"{MIXED},seed={seed}")
    results = {name: tmp_path / f"{name}.results.csv" for name in paths}
    cmds = commands(paths, results, runner.sandbox.base_url, ledger_at)
    procs = {name: start(command, tmp_path) for name, command in cmds.items()}
    outputs = {name: proc.communicate(timeout=180) for name, proc in procs.items()}
    for name, proc in procs.items():
        assert proc.returncode in (0, 1), (name, outputs[name])
    statuses = check(runner, results)
    # Not vacuous: the processes met each other's rows (skipped as imported by another).
    assert statuses["skipped:already imported"] >= 40, statuses
    finish_all(runner, cmds, tmp_path)
    check(runner, results)
    completeness(runner)


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")
@pytest.mark.parametrize("seed", [41])
def test_one_of_three_killed_mid_run_then_rerun_posts_each_activity_once(
    faulty_sandbox, tmp_path: Path, seed: int, ledger_at: str
) -> None:
    paths = write_inputs(tmp_path)
    runner = faulty_sandbox(f"{MIXED},seed={seed}")
    results = {name: tmp_path / f"{name}.results.csv" for name in paths}
    cmds = commands(paths, results, runner.sandbox.base_url, ledger_at)
    procs = {name: start(command, tmp_path) for name, command in cmds.items()}
    victim = procs["b"]
    wait_until(
        lambda: final_lines(results["b"]) >= 30 or victim.poll() is not None, "progress of b"
    )
    assert victim.poll() is None, "b finished before the kill"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    assert victim.returncode == -signal.SIGKILL
    for name in ("a", "c"):
        out, err = procs[name].communicate(timeout=180)
        assert procs[name].returncode in (0, 1), (name, out, err)
    wait_until(lambda: runner.call(lambda: runner.sandbox.in_flight) == 0, "a quiet sandbox")
    again = subprocess.run(
        cmds["b"], env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert again.returncode in (0, 1), again.stdout + again.stderr
    check(runner, results)
    finish_all(runner, cmds, tmp_path)
    check(runner, results)
    completeness(runner)
