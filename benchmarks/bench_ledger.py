"""The ledger's cost: CPU per row of an import's ledger work, lookups in a large ledger, size.

What a run adds per row when the ledger is on (importer.ledger.run): the row's fingerprint,
its claim (one committed SQLite transaction per group of 32 rows, ``synchronous=FULL``), and
the mark once it succeeded (a transaction per group). This script does exactly that work for
N rows of the example mapping's payloads, in-process, and measures the process's CPU time
(all threads) per row: the target is at most 0.1 ms. Then it fills a ledger with M imported
activities and times single lookups by fingerprint (and by lead key, ``ledger show``), and
reports the file's size per million activities.

    python benchmarks/bench_ledger.py            # 1,000,000 rows; a 10,000,000-activity ledger
    python benchmarks/bench_ledger.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit_json, print_table  # noqa: E402

from importer.ledger.fingerprint import fingerprint, lead_key  # noqa: E402
from importer.ledger.store import Imported, Intent, Ledger  # noqa: E402

GROUP = 32


def body(i: int) -> dict[str, Any]:
    """A CreateCustom body shaped as mappings/example.yaml makes them."""
    email = f"lead{i % 250_000}@example.com"
    return {
        "LeadDetails": [
            {"Attribute": "FirstName", "Value": f"First{i}"},
            {"Attribute": "LastName", "Value": "Sharma"},
            {"Attribute": "EmailAddress", "Value": email},
            {"Attribute": "Phone", "Value": f"+91-98{i % 100_000_000:08d}"},
            {"Attribute": "mx_City", "Value": "Pune"},
            {"Attribute": "SearchBy", "Value": "EmailAddress"},
        ],
        "Activity": {
            "ActivityEvent": 105,
            "ActivityNote": f"Visited. Price sensitive ({i})",
            "ActivityDateTime": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d} 10:{i % 60:02d}:00",
            "Fields": [
                {"SchemaName": "mx_Custom_1", "Value": f"{100 + i % 900}.00"},
                {"SchemaName": "mx_Custom_2", "Value": "Credit Card"},
            ],
        },
    }


def import_work(path: Path, rows: int) -> dict[str, Any]:
    """The ledger's share of an import of ``rows`` rows: fingerprint, claim, mark."""
    bodies = [body(i) for i in range(2000)]  # built once: the mapping's cost is not ours
    ledger = Ledger.open(path)
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, rows, GROUP):
        group = []
        for i in range(start, min(rows, start + GROUP)):
            b = bodies[i % 2000]
            key = b["LeadDetails"][2]["Value"] + str(i)
            fp = fingerprint(key, b)
            assert fp is not None
            group.append(Intent(fp[0], lead_key(key), "/srv/drop/leads.csv", i + 2, "/r.csv"))
        ledger.claim(group)
        ledger.mark_imported([Imported(i, f"act-{i.row}", "lead") for i in group])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    ledger.close()
    return {
        "rows": rows,
        "cpu_ms_per_row": round(cpu * 1000 / rows, 4),
        "wall_ms_per_row": round(wall * 1000 / rows, 4),
        "bytes_per_row": round(_size(path) / rows, 1),
    }


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def fill(path: Path, activities: int) -> float:
    """A ledger of ``activities`` imported activities, written in large transactions."""
    import sqlite3

    ledger = Ledger.open(path)
    ledger.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("INSERT OR IGNORE INTO sources(path) VALUES ('/srv/drop/leads.csv')")
    started = time.perf_counter()
    step = 200_000
    for start in range(0, activities, step):
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO activities(fingerprint, lead_key, activity_id, lead_id, imported_at, "
            "input, row) VALUES (?, ?, ?, ?, '2026-12-01 22:00:00', 1, ?)",
            (
                (
                    i.to_bytes(16, "big")[::-1],
                    f"lead{i % 2_000_000}@example.com",
                    f"a1b2c3d4-{i:012d}",
                    f"l9f8e7d6-{i % 2_000_000:012d}",
                    i + 2,
                )
                for i in range(start, min(activities, start + step))
            ),
        )
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return time.perf_counter() - started


def lookups(path: Path, activities: int, count: int) -> dict[str, Any]:
    ledger = Ledger.open(path)
    rng = random.Random(7)
    by_fp, by_key = [], []
    for _ in range(count):
        i = rng.randrange(activities)
        started = time.perf_counter()
        entry = ledger.lookup(i.to_bytes(16, "big")[::-1])
        by_fp.append(time.perf_counter() - started)
        assert entry is not None and entry.row == i + 2
        started = time.perf_counter()
        found = ledger.show(f"lead{i % 2_000_000}@example.com")
        by_key.append(time.perf_counter() - started)
        assert found
    ledger.close()
    return {
        "lookup_ms_median": round(statistics.median(by_fp) * 1000, 4),
        "lookup_ms_p99": round(sorted(by_fp)[int(0.99 * len(by_fp))] * 1000, 4),
        "show_ms_median": round(statistics.median(by_key) * 1000, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows; 200,000 activities")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--activities", type=int, default=None)
    args = parser.parse_args(argv)
    rows = args.rows or (20_000 if args.quick else 1_000_000)
    activities = args.activities or (200_000 if args.quick else 10_000_000)
    with tempfile.TemporaryDirectory(prefix="bench-ledger-", dir=os.environ.get("TMPDIR")) as d:
        work = import_work(Path(d) / "import.sqlite", rows)
        big = Path(d) / "big.sqlite"
        filled = fill(big, activities)
        size = _size(big)
        found = lookups(big, activities, 2000)
    results = {
        "quick": args.quick,
        "import": work,
        "ledger": {
            "activities": activities,
            "fill_seconds": round(filled, 1),
            "mb": round(size / 2**20, 1),
            "mb_per_million": round(size / 2**20 / (activities / 1e6), 1),
            **found,
        },
    }
    print_table(
        "the ledger's work in an import (fingerprint, claim, mark; groups of 32)",
        ["rows", "CPU ms/row", "wall ms/row", "bytes/row", "target"],
        [[f"{rows:,}", work["cpu_ms_per_row"], work["wall_ms_per_row"], work["bytes_per_row"],
          "<= 0.1 ms CPU"]],
    )  # fmt: skip
    print_table(
        "lookups in a large ledger",
        ["activities", "MB", "MB/million", "lookup ms (median)", "p99", "show ms"],
        [[f"{activities:,}", results["ledger"]["mb"], results["ledger"]["mb_per_million"],
          found["lookup_ms_median"], found["lookup_ms_p99"], found["show_ms_median"]]],
    )  # fmt: skip
    print()
    emit_json("ledger", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
