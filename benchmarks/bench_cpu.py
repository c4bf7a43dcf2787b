"""Client overhead: CPU seconds per row of ``run_import``, end to end, at a scaled limit.

The sandbox runs in a separate process at ~1,000 calls per 1 s (so the limit is not what
bounds the run and the importer's own cost shows); this process runs ``run_import`` on a
generated CSV (read, map, send, journal, final rewrite of the results file) and divides the
user + system CPU time it spent (``resource.getrusage(RUSAGE_SELF)``, measured around the
call, so interpreter start-up and imports are excluded) by the rows imported.

Target (issue 5): at most 1 ms of CPU per row.

    python benchmarks/bench_cpu.py              # 20,000 rows, about 30 s
    python benchmarks/bench_cpu.py --quick      # 1,000 rows
    python benchmarks/bench_cpu.py --profile    # and print where the CPU went (cProfile)
    python benchmarks/bench_cpu.py --ledger off           # without the ledger
    python benchmarks/bench_cpu.py --ledger postgres      # team mode: a throwaway PostgreSQL
                                                          # server (tests/postgres_server.py)

With ``--ledger postgres`` the table also gives the database server's CPU per row (the
postmaster and its backends, from ``/proc``), which runs beside the importer.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import EXAMPLE_MAPPING, ROOT, SandboxProcess, emit_json, print_table, write_leads_csv

from importer import run_import
from importer.sandbox import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
from importer.settings import Credentials

TARGET_MS = 1.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 rows")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--rate", type=int, default=1000, help="sandbox limit per --per")
    parser.add_argument("--per", type=float, default=1.0)
    parser.add_argument("--latency", type=float, default=0.05, help="mean simulated latency")
    parser.add_argument("--profile", action="store_true", help="print the top CPU consumers")
    parser.add_argument(
        "--ledger",
        default=None,
        help="'off', 'postgres' (a throwaway server), a postgresql:// URL or a file "
        "(default: the account's SQLite ledger in a fresh data directory)",
    )
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        cluster = None
        if args.ledger == "postgres":
            sys.path.insert(0, str(ROOT))
            from tests.postgres_server import cluster as new_cluster

            cluster = stack.enter_context(new_cluster())
            args.ledger = cluster.url
        return _run(args, cluster)


def server_cpu(cluster: Any) -> float:
    """CPU seconds of the PostgreSQL server so far: the postmaster (with the backends it
    reaped) and its live backends."""
    if cluster is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    root = cluster._process.pid
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        pid, ppid = int(entry), int(fields[1])
        if pid == root:
            total += sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
        elif ppid == root:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _run(args: argparse.Namespace, cluster: Any) -> int:
    rows = args.rows or (1_000 if args.quick else 20_000)
    settings = {"rate": args.rate, "per": args.per, "latency": args.latency}
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as folder:
        tmp = Path(folder)
        source = write_leads_csv(tmp / "leads.csv", rows)
        with SandboxProcess(
            rate=args.rate, per=args.per, latency=args.latency, jitter=args.latency / 2
        ) as box:
            profiler = cProfile.Profile() if args.profile else None
            cpu_before, started = cpu_seconds(), time.monotonic()
            server_before = server_cpu(cluster)
            if profiler is not None:
                profiler.enable()
            summary = run_import(
                source,
                EXAMPLE_MAPPING,
                results=tmp / "leads.results.csv",
                host=box.base_url,
                credentials=Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY),
                rate=args.rate,
                per=args.per,
                ledger=False if args.ledger == "off" else args.ledger,
            )
            if profiler is not None:
                profiler.disable()
            elapsed, cpu = time.monotonic() - started, cpu_seconds() - cpu_before
            server = server_cpu(cluster) - server_before
            calls = box.state()["calls"]
    ok = summary.by_status["success"]
    results: dict[str, Any] = {
        "quick": args.quick,
        "settings": settings,
        "ledger": summary.ledger or "off",
        "rows": rows,
        "ok": ok,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(ok / elapsed, 1),
        "cpu_seconds": round(cpu, 3),
        "cpu_ms_per_row": round(cpu / rows * 1000, 3),
        "cpu_share_of_one_core": round(cpu / elapsed, 3),
        "database_cpu_ms_per_row": round(server / rows * 1000, 3) if cluster else None,
        "http_429": sum(1 for c in calls if c["http_status"] == 429),
        "target_ms_per_row": TARGET_MS,
    }
    print_table(
        f"importer CPU per row (sandbox in another process, {args.rate} per {args.per:g} s, "
        f"latency {args.latency:g} s; ledger: {results['ledger']})",
        ["rows", "ok", "s", "rows/s", "CPU s", "CPU ms/row", "DB CPU ms/row", "target", "429s"],
        [
            [
                f"{rows:,}",
                ok,
                results["seconds"],
                results["rows_per_s"],
                results["cpu_seconds"],
                results["cpu_ms_per_row"],
                results["database_cpu_ms_per_row"] if cluster else "-",
                "<= 1",
                results["http_429"],
            ]
        ],
    )
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        print(text.getvalue())
    print()
    emit_json("cpu", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
