"""Resume planning: how long ``read_outcomes`` takes on a 1,000,000-line results file.

Resuming reads the results file back to work out which rows are done
(``importer.results.journal.read_outcomes``). This writes, in a temporary folder, a results file of
1,000,000 rows in the journal's format (header + one ``Result`` per row: 97% ``success`` with
activity and lead ids, 2% ``failed`` with an error message, 1% ``unknown``), then times
``read_outcomes`` on it (the median of ``--repeat`` calls in this process, after one untimed
call that warms the page cache).

Target (issue 5): at most 3 s.

    python benchmarks/bench_resume.py            # about 20 s, most of it writing the file
    python benchmarks/bench_resume.py --quick    # a second or two
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import emit_json, print_table

from importer.results.journal import COLUMNS, Result, read_outcomes

TARGET_SECONDS = 3.0


def write_results(path: Path, rows: int) -> Path:
    """A finished run's results file: one line per row, in row order, as ``Journal`` writes."""
    stamp = "2025-01-15T10:20:30Z"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        batch: list[list[str]] = []
        for i in range(rows):
            row = i + 2
            kind = i % 100
            if kind < 97:
                result = Result(
                    row,
                    f"lead{i}@example.com",
                    "success",
                    activity_id=f"{i:08x}-6d2c-4b7e-9a51-{i * 7919 % 16**12:012x}",
                    lead_id=f"{i * 31:08x}-1f3a-4c2d-8e90-{i * 104729 % 16**12:012x}",
                    http_status=200,
                    attempts=1,
                    finished_at=stamp,
                )
            elif kind < 99:
                result = Result(
                    row,
                    f"lead{i}@example.com",
                    "failed",
                    http_status=500,
                    error_type="MXInvalidInputException",
                    error_message="Lead attribute Phone: '+91 x' is not a valid phone number",
                    attempts=1,
                    finished_at=stamp,
                )
            else:
                result = Result(
                    row,
                    f"lead{i}@example.com",
                    "unknown",
                    error_type="ServerDisconnectedError",
                    error_message="sent, but the answer was lost; it may exist in LeadSquared",
                    attempts=1,
                    finished_at=stamp,
                )
            batch.append(result.cells())
            if len(batch) == 10_000:
                writer.writerows(batch)
                batch.clear()
        writer.writerows(batch)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50,000 lines, one timed call")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None, help="timed calls (default 3)")
    args = parser.parse_args(argv)
    rows = args.rows or (50_000 if args.quick else 1_000_000)
    repeat = args.repeat or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as folder:
        path = Path(folder) / "leads.results.csv"
        started = time.monotonic()
        write_results(path, rows)
        generated = time.monotonic() - started
        size_mb = path.stat().st_size / 2**20
        read_outcomes(path)  # warm the page cache: a resume reads a file the last run wrote
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            outcomes = read_outcomes(path)
            times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    # read_outcomes returned a dict before the compact Outcomes object; accept either.
    counts = outcomes.counts() if hasattr(outcomes, "counts") else Counter(outcomes.values())
    results: dict[str, Any] = {
        "quick": args.quick,
        "lines": rows,
        "file_mb": round(size_mb, 1),
        "generate_seconds": round(generated, 1),
        "seconds": round(seconds, 3),
        "all_seconds": [round(t, 3) for t in times],
        "lines_per_s": round(rows / seconds),
        "statuses": dict(counts),
        "target_seconds": TARGET_SECONDS,
    }
    print_table(
        "resume planning: importer.results.journal.read_outcomes",
        ["lines", "MB", "s (median)", "lines/s", "target s", "rows found"],
        [
            [
                f"{rows:,}",
                results["file_mb"],
                seconds,
                f"{rows / seconds:,.0f}",
                "<= 3",
                len(outcomes),
            ]
        ],
    )
    print()
    emit_json("resume", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
