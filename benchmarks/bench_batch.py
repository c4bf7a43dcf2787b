"""Batch benchmark: the rate limit holds across the runs of a batch, not only within one run.

Against the sandbox in a separate process (strict rolling window, 600 ms +/- 300 ms latency),
at 25 calls per 5 s:

* ``batch``: ``run_batch`` on three files of 60 rows each (each fills more than a window),
  which shares one pacer between its files;
* ``separate``: the same three files through three plain ``run_import`` calls, each with a
  pacer of its own (what ``run_batch`` did before): each file starts with every slot free
  while the previous file's calls are still in the server's window;
* ``resume``: a ``limit`` run of 40 rows, then at once a run resuming the same results file
  (the results file was written less than ``per`` ago, so the resume holds its slots).

For each: refused calls (429s), the most metered arrivals in any ``per`` window at the server
(``max_in_window``, preflight GETs included; target: at most ``rate``), rows lost, rows/s over
the wall time and its ratio to ``rate / (per + mean latency)``.

    python benchmarks/bench_batch.py            # about 2 minutes
    python benchmarks/bench_batch.py --quick    # a few seconds, scaled-down smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    EXAMPLE_MAPPING,
    SandboxProcess,
    emit_json,
    max_in_window,
    print_table,
    write_leads_csv,
)

from importer import run_import
from importer.batch import run_batch
from importer.leadsquared.client import CREATE_PATH
from importer.sandbox import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
from importer.settings import Credentials

KEYS = Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)

FULL = {
    "limit": {"rate": 25, "per": 5.0, "latency": 0.6, "jitter": 0.3},
    "file_rows": 60,
    "files": 3,
    "resume_rows": 80,
    "resume_limit": 40,
}
QUICK = {
    "limit": {"rate": 20, "per": 0.5, "latency": 0.06, "jitter": 0.03},
    "file_rows": 30,
    "files": 3,
    "resume_rows": 40,
    "resume_limit": 20,
}


def ceiling(limit: dict[str, Any]) -> float:
    """``rate / (per + mean latency)``: the throughput a client can prove safe."""
    return limit["rate"] / (limit["per"] + limit["latency"])


def measure(
    box: SandboxProcess, limit: dict[str, Any], rows: int, work: Callable[[], int]
) -> dict[str, Any]:
    """Run ``work`` (returns rows that succeeded) on a fresh sandbox; what the server saw."""
    box.reset()
    started = time.monotonic()
    ok = work()
    elapsed = time.monotonic() - started
    state = box.state()
    metered = [c["arrived"] for c in state["calls"] if c["metered"]]
    per_s = ok / elapsed if elapsed > 0 else 0.0
    return {
        "rows": rows,
        "ok": ok,
        "lost": rows - ok,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(per_s, 3),
        "ratio_to_ceiling": round(per_s / ceiling(limit), 3),
        "calls": len(state["calls"]),
        "row_calls": sum(1 for c in state["calls"] if c["path"] == CREATE_PATH),
        "http_429": sum(1 for c in state["calls"] if c["http_status"] == 429),
        "max_in_window": max_in_window(metered, limit["per"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, scaled down")
    parser.add_argument("--seed", type=int, default=1, help="seed of the sandbox latency")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    limit = config["limit"]
    options: dict[str, Any] = {
        "credentials": KEYS,
        "rate": limit["rate"],
        "per": limit["per"],
    }
    results: dict[str, Any] = {"quick": args.quick, "seed": args.seed, "config": config}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-batch-")))
        box = stack.enter_context(SandboxProcess(**limit, seed=args.seed))
        options["host"] = box.base_url
        rows = config["files"] * config["file_rows"]

        def files(phase: str) -> list[Path]:
            folder = tmp / phase
            folder.mkdir()
            return [
                write_leads_csv(folder / f"day{i}.csv", config["file_rows"])
                for i in range(config["files"])
            ]

        def batch() -> int:
            done = run_batch(files("batch"), EXAMPLE_MAPPING, results_dir=tmp / "batch", **options)
            return sum(f.summary.by_status["success"] for f in done.files if f.summary)

        def separate() -> int:
            return sum(
                run_import(
                    source, EXAMPLE_MAPPING, results=source.with_suffix(".results.csv"), **options
                ).by_status["success"]
                for source in files("separate")
            )

        def resume() -> int:
            source = write_leads_csv(tmp / "resume.csv", config["resume_rows"])
            results_file = tmp / "resume.results.csv"
            run_import(
                source,
                EXAMPLE_MAPPING,
                results=results_file,
                limit=config["resume_limit"],
                **options,
            )
            # At once: the results file was written a moment ago, its calls are in the window.
            summary = run_import(source, EXAMPLE_MAPPING, results=results_file, **options)
            return summary.by_status["success"]

        results["batch"] = measure(box, limit, rows, batch)
        results["separate"] = measure(box, limit, rows, separate)
        results["resume"] = measure(box, limit, config["resume_rows"], resume)

    table = [
        [
            name,
            f"{limit['rate']}/{limit['per']:g}s lat {limit['latency']:g}±{limit['jitter']:g}",
            r["rows"],
            r["lost"],
            r["seconds"],
            r["rows_per_s"],
            r["ratio_to_ceiling"],
            r["calls"],
            r["http_429"],
            r["max_in_window"],
        ]
        for name, r in ((n, results[n]) for n in ("batch", "separate", "resume"))
    ]
    print_table(
        f"batch and resume (at most {limit['rate']} arrivals per window allowed)",
        ["phase", "limit", "rows", "lost", "s", "rows/s", "/ceiling", "calls", "429s", "max/win"],
        table,
    )
    emit_json("batch", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
