"""The account's slot schedule shared by processes (importer.ledger.pacing)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from importer.ledger.pacing import SharedSlots

from ..conftest import ROOT

RATE, PER = 5, 0.5

CALLER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from importer.ledger.pacing import share
    from importer.ledger.store import open_ledger
    from importer.sending.pacer import Pacer

    async def main(path, calls, out):
        pacer = Pacer(int(sys.argv[4]), float(sys.argv[5]))
        share(pacer, open_ledger(path), "calls")
        events = []

        async def one():
            async with pacer.slot() as slot:
                start = time.monotonic()
                await asyncio.sleep(0.02)  # the call's latency
                slot.answered()
                events.append((start, time.monotonic()))

        await asyncio.gather(*(one() for _ in range(calls)))
        with open(out, "w") as f:
            json.dump(events, f)

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
    """
)


def most_starts_in_window(starts: list[float], per: float) -> int:
    starts = sorted(starts)
    most, first = 0, 0
    for last, at in enumerate(starts):
        while at - starts[first] >= per:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_three_processes_together_never_start_more_than_rate_calls_in_a_window(
    tmp_path: Path, ledger_at: str
) -> None:
    """Each process is given the whole limit; the shared slots (a file beside an SQLite
    ledger, rows of a PostgreSQL one) keep the three under it."""
    outs = [tmp_path / f"events{i}.json" for i in range(3)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CALLER, ledger_at, "12", str(out), str(RATE), str(PER)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for out in outs
    ]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    events = [tuple(e) for out in outs for e in json.loads(out.read_text())]
    assert len(events) == 36
    # Starts at least a window apart per slot: any window holds at most RATE of them (an
    # arrival lies between its start and its answer, the same bound holds at the server).
    assert most_starts_in_window([s for s, _ in events], PER) <= RATE
    # Not vacuous: alone, each process would have started RATE at once.
    span = max(a for _, a in events) - min(s for s, _ in events)
    assert span >= (36 / RATE - 1) * PER


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")
def test_a_slot_held_by_a_killed_process_reopens_two_windows_later(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite.pacing-calls"
    code = textwrap.dedent(
        f"""
        import time
        from importer.ledger.pacing import SharedSlots
        slots = SharedSlots({str(path)!r}, 2, 1.0)
        print(slots.take()[0], flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    held = int(proc.stdout.readline())
    slots = SharedSlots(path, 2, 1.0)
    free, _ = slots.take()
    assert free == 1 - held  # the other slot: the held one is not handed out
    assert slots.take()[0] == -1  # both in use
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    died = time.monotonic()
    deadline = died + 5
    while slots.snapshot()[held][1] != 0:  # seen dead at the next look (a 0.1 s cache)
        index, when = slots.take()
        assert index == -1
        assert time.monotonic() < deadline, "the dead holder was never noticed"
    # The dead process's call may still be on its way: its slot waits two windows.
    assert slots.take()[0] == -1 and slots.snapshot()[held][0] >= died + 1.9


def test_a_torn_schedule_file_is_rewritten_closed(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite.pacing-calls"
    path.write_bytes(b"LSQPACE1" + b"\x00" * 7)
    slots = SharedSlots(path, 3, 1.0)
    index, when = slots.take()
    assert index == -1 and when > time.monotonic() + 1.5
    assert len(slots.snapshot()) == 3
