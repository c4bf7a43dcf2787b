"""Memory of a whole run, and the cost of the ends of a run: peak RSS, no-op rerun, resume plan.

1. ``lsq-import run --concurrency 200`` (a subprocess, so its peak RSS from start to exit is its own
   ``ru_maxrss``, from ``os.wait4``) over a generated N-row CSV, against a sandbox in its own
   process at a high limit (``python -m importer sandbox --port 0 --rate 5000 --per 1``): what
   a multi-day run holds while sending and at its end (final rewrite and report).
   It stops 10,000 rows before the end (``--limit``); the same command then resumes them:
   how long until the resume's first call reaches the sandbox, and in all.
2. The same command again: a no-op rerun of the finished file (wall time and peak RSS), and
   ``python -m importer --help`` for the interpreter's and the imports' share of it.
3. ``read_outcomes`` (resume planning) on a 1,000,000-line results file (median of three).

Targets: peak RSS <= 100 MB at 3,000,000 rows; no-op rerun <= 1 s and resume planning
<= 1 s at 1,000,000 rows.

    python benchmarks/bench_memory.py                 # 3,000,000 rows: about an hour
    python benchmarks/bench_memory.py --rows 200000   # a few minutes
    python benchmarks/bench_memory.py --quick         # 2,000 rows, 20,000 lines
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import EXAMPLE_MAPPING, ROOT, SandboxProcess, emit_json, print_table, write_leads_csv
from bench_resume import write_results

from importer.results.journal import read_outcomes
from importer.sandbox import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY

TARGETS = {"peak_rss_mb": 100, "noop_seconds": 1.0, "read_outcomes_seconds": 1.0}


def measure(command: list[str], first_call: Any = None) -> dict[str, Any]:
    """Wall time, peak RSS and exit code of one child process; with ``first_call`` (a
    sandbox, reset beforehand), also the seconds until its first call arrived there."""
    env = {**os.environ, "LSQ_ACCESS_KEY": DEFAULT_ACCESS_KEY, "LSQ_SECRET_KEY": DEFAULT_SECRET_KEY}
    first: float | None = None
    with tempfile.TemporaryFile() as out:
        started = time.monotonic()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        while first_call is not None and first is None and proc.poll() is None:
            calls = first_call.state()["calls"]
            if any(call["path"].endswith("CreateCustom") for call in calls):  # a row's call
                first = time.monotonic() - started
            else:
                time.sleep(0.01)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.monotonic() - started
        out.seek(0)
        tail = out.read()[-2000:].decode(errors="replace").strip().splitlines()
    return {
        "seconds": round(elapsed, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux reports kilobytes
        "exit_code": os.waitstatus_to_exitcode(status),
        "output_tail": tail[-1:],
        **({} if first_call is None else {"first_call_seconds": first and round(first, 3)}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 rows, 20,000 lines")
    parser.add_argument("--rows", type=int, default=None, help="CSV rows (3,000,000)")
    parser.add_argument("--lines", type=int, default=None, help="read_outcomes lines (1,000,000)")
    parser.add_argument("--rate", type=int, default=5000, help="sandbox limit per 1 s")
    parser.add_argument(
        "--concurrency", type=int, default=200, help="calls in flight (default: not --rate)"
    )
    args = parser.parse_args(argv)
    rows = args.rows or (2_000 if args.quick else 3_000_000)
    lines = args.lines or (20_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        tmp = Path(folder)
        source = write_leads_csv(tmp / "leads.csv", rows)
        results = tmp / "leads.results.csv"
        with SandboxProcess(rate=args.rate, per=1.0) as box:
            command = [
                sys.executable,
                "-m",
                "importer",
                "run",
                str(source),
                "--mapping",
                str(EXAMPLE_MAPPING),
                "--results",
                str(results),
                "--host",
                box.base_url,
                "--rate",
                str(args.rate),
                "--per",
                "1",
                "--concurrency",
                str(args.concurrency),
                "--quiet",
            ]
            left = min(10_000, rows // 10)
            run = measure([*command, "--limit", str(rows - left)])
            # The resume of the last rows: how long until its first call (planning: reading the
            # results file, checking it, skipping the rows already done) and in all.
            box.reset()
            # A resume within --per of the last write holds its slots for that window (the
            # earlier run's calls may still count at the server): wait it out, to measure the
            # planning and not the hold.
            time.sleep(1.1)
            resume = measure(command, first_call=box)
            noop = measure(command)
            # What any command costs before it does anything (interpreter, imports): the part
            # of the no-op rerun that is not lsq-import's work.
            startup = measure([sys.executable, "-m", "importer", "--help"])
        results_mb = round(results.stat().st_size / 1e6, 1)
        plan = tmp / "plan.results.csv"
        write_results(plan, lines)
        read_outcomes(plan)  # warm the page cache
        times = []
        for _ in range(3):
            started = time.perf_counter()
            read_outcomes(plan)
            times.append(time.perf_counter() - started)
    figures: dict[str, Any] = {
        "quick": args.quick,
        "rows": rows,
        "results_mb": results_mb,
        "run": run,
        "resume": {"rows_left": left, **resume},
        "noop": noop,
        "startup": startup,
        "read_outcomes": {"lines": lines, "seconds": round(statistics.median(times), 3)},
        "targets": TARGETS,
    }
    print_table(
        f"lsq-import run over {rows:,} CSV rows (sandbox in another process, {args.rate}/1 s)",
        ["what", "s", "peak RSS MB", "exit", "target"],
        [
            ["run", run["seconds"], run["peak_rss_mb"], run["exit_code"], "<= 100 MB"],
            [
                f"resume of the last {left:,}: first call after {resume['first_call_seconds']} s",
                resume["seconds"],
                resume["peak_rss_mb"],
                resume["exit_code"],
                "first call <= 1 s",
            ],
            ["no-op rerun", noop["seconds"], noop["peak_rss_mb"], noop["exit_code"], "<= 1 s"],
            ["start-up alone (--help)", startup["seconds"], startup["peak_rss_mb"], "", ""],
            [
                f"read_outcomes, {lines:,} lines",
                figures["read_outcomes"]["seconds"],
                "",
                "",
                "<= 1 s",
            ],
        ],
    )
    print()
    emit_json("memory", figures)
    return 0 if run["exit_code"] == 0 and resume["exit_code"] == noop["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
