"""Bulk mode benchmark: rows/s of ``--mode single``, ``bulk`` and ``auto`` at three plans.

Against the sandbox in its own process (``lsq-import sandbox --plan P``: the plan's ordinary
and bulk limits, bulk calls counted against both, as lsq-import assumes by default) with a
simulated latency of 600 ms +/- 300 ms, for the Enterprise (25 calls and 1 bulk call per
5 s), Super (newer page: 20 and 10) and Pro (newer page: 10 and 5) presets, each mode runs
``run_import(..., plan=P, mode=M)`` for about ``--seconds`` seconds of rows and reports:

* ``rows_per_s``: rows imported over the run's wall time (start-up and preflight included);
* ``steady_rows_per_s``: rows settled after the run's first ``per`` seconds, per second (the
  first window is free: every slot starts open);
* each against its own ceiling: single ``rate / (per + lat)``; bulk ``25 * bulk_rate /
  (2 * (per + lat))`` (two calls a batch of 25); auto the bulk ceiling plus what the ordinary
  limit has left for single calls, ``(rate - bulk_rate) / (per + lat)`` (bulk calls hold
  ordinary slots too);
* the calls the sandbox refused (429) and the most arrivals it saw in one window.

A scaled run (1,000 calls and 1,000 bulk calls per 1 s, no latency) shows the client's CPU
per row, so that the limits, not the client, are what the figures above measure.

    python benchmarks/bench_bulk.py               # about 10 minutes
    python benchmarks/bench_bulk.py --quick       # a few seconds, scaled-down smoke run
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import EXAMPLE_MAPPING, SandboxProcess, emit_json, print_table, write_leads_csv

from importer import run_import
from importer.plans import PLANS
from importer.results.status import Status
from importer.sandbox import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
from importer.settings import Credentials

KEYS = Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
MODES = ("single", "bulk", "auto")
BATCH = 25


def ceilings(rate: int, bulk_rate: int, per: float, latency: float) -> dict[str, float]:
    cycle = per + latency
    bulk = BATCH * bulk_rate / (2 * cycle)
    return {
        "single": rate / cycle,
        "bulk": bulk,
        "auto": bulk + max(0, rate - bulk_rate) / cycle,
    }


def one_run(
    box: SandboxProcess,
    tmp: Path,
    *,
    name: str,
    rows: int,
    mode: str,
    limits: dict[str, Any],
    ceiling: float,
) -> dict[str, Any]:
    box.reset()
    source = write_leads_csv(tmp / f"{name}.csv", rows)
    settled: list[float] = []
    started = time.monotonic()
    cpu = time.process_time()
    summary = run_import(
        source,
        EXAMPLE_MAPPING,
        results=tmp / f"{name}.results.csv",
        host=box.base_url,
        credentials=KEYS,
        mode=mode,
        on_result=lambda r: (
            settled.append(time.monotonic()) if r.status is Status.SUCCESS else None
        ),
        **limits,
    )
    elapsed = time.monotonic() - started
    cpu = time.process_time() - cpu
    state = box.state()
    calls = state["calls"]
    ok = summary.by_status[Status.SUCCESS]
    first = settled[0] if settled else started
    later = [t for t in settled if t > first + limits["per"]]
    span = later[-1] - (first + limits["per"]) if len(later) > 1 else 0.0
    steady = len(later) / span if span > 0 else 0.0
    per_s = ok / elapsed if elapsed > 0 else 0.0
    return {
        "mode": mode,
        "rows": rows,
        "ok": ok,
        "seconds": round(elapsed, 1),
        "rows_per_s": round(per_s, 3),
        "ceiling": round(ceiling, 3),
        "ratio": round(per_s / ceiling, 3),
        "steady_rows_per_s": round(steady, 3),
        "steady_ratio": round(steady / ceiling, 3),
        "http_429": sum(1 for c in calls if c.get("http_status") == 429),
        "calls": summary.calls,
        "bulk_calls": summary.bulk_calls,
        "cpu_ms_per_row": round(1000 * cpu / max(1, ok), 3),
    }


def preset(
    name: str, seconds: float, tmp: Path, latency: float, jitter: float, modes: list[str]
) -> list[dict]:
    plan = PLANS[name]
    limit = ceilings(plan.calls, plan.bulk_calls, plan.per, latency)
    found = []
    with SandboxProcess(
        rate=plan.calls, per=plan.per, latency=latency, jitter=jitter, extra=["--plan", name]
    ) as box:
        for mode in modes:
            rows = max(30, round(limit[mode] * seconds))
            result = one_run(
                box,
                tmp,
                name=f"{name}-{mode}",
                rows=rows,
                mode=mode,
                limits={"plan": name, "per": plan.per},
                ceiling=limit[mode],
            )
            found.append({"plan": name, **result})
    return found


def scaled(rows: int, tmp: Path) -> dict[str, Any]:
    """The client's CPU per row when the limits are far away (1,000 calls/s of each kind)."""
    with SandboxProcess(rate=1000, per=1.0, extra=["--bulk-rate", "1000"]) as box:
        limit = ceilings(1000, 1000, 1.0, 0.0)
        return one_run(
            box,
            tmp,
            name="scaled",
            rows=rows,
            mode="bulk",
            limits={"rate": 1000, "bulk_rate": 1000, "per": 1.0},
            ceiling=limit["bulk"],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, scaled down")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of rows per run")
    parser.add_argument("--plans", default="enterprise,super,pro")
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    latency, jitter, seconds = 0.6, 0.3, args.seconds
    plans = args.plans.split(",")
    if args.quick:
        latency, jitter, seconds, plans = 0.05, 0.02, 2.0, ["super"]
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        modes = args.modes.split(",")
        results = [r for name in plans for r in preset(name, seconds, tmp, latency, jitter, modes)]
        cpu = scaled(2_000 if args.quick else 50_000, tmp)
    headers = ["plan", "mode", "rows", "rows_per_s", "ceiling", "ratio", "steady_ratio", "429s"]
    print_table(
        f"bulk mode at {latency * 1000:.0f} ms +/- {jitter * 1000:.0f} ms",
        headers,
        [
            [
                r["plan"],
                r["mode"],
                r["ok"],
                r["rows_per_s"],
                r["ceiling"],
                r["ratio"],
                r["steady_ratio"],
                r["http_429"],
            ]
            for r in results
        ],
    )
    print_table(
        "scaled (1,000 calls and bulk calls per 1 s, no latency)",
        ["rows", "rows_per_s", "cpu_ms_per_row", "429s"],
        [[cpu["ok"], cpu["rows_per_s"], cpu["cpu_ms_per_row"], cpu["http_429"]]],
    )
    emit_json("bulk", {"latency": latency, "jitter": jitter, "runs": results, "scaled": cpu})


if __name__ == "__main__":
    main()
