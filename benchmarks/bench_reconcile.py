"""What reconciliation costs: lookup calls and time per 1,000 ``unknown`` rows.

Imports N rows (default 1,000) three times against a sandbox in its own process at a scaled
limit (1,000 calls per 1 s, 20 ms latency): once without faults (the baseline), then with
``drop_after=1`` (every call lands and its answer is lost, so every row is ``unknown`` and
looked up), with a row token (``options.row_token: mx_Custom_5``) and without one (matching by
content). ``--settle-delay 0`` so the figures are the lookups' own; the delay (10 s by default)
adds once per run with lost answers. Reports lookup calls per 1,000 unknown rows, the extra wall
time here, and what those calls take at Enterprise's 25 calls per 5 s with 600 ms latency
(calls / (25 / 5.6 s)).

    python benchmarks/bench_reconcile.py            # ~1 min
    python benchmarks/bench_reconcile.py --rows 200 # a few seconds
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import EXAMPLE_MAPPING, SandboxProcess, emit_json, print_table, write_leads_csv

from importer import run_import
from importer.sandbox import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
from importer.settings import Credentials

RATE, PER = 1000, 1.0
REAL_CEILING = 25 / (5 + 0.6)


def one(source: Path, mapping: Path, results: Path, faults: str | None) -> dict[str, Any]:
    with SandboxProcess(rate=RATE, per=PER, latency=0.02, faults=faults) as box:
        started = time.monotonic()
        summary = run_import(
            source,
            mapping,
            results=results,
            host=box.base_url,
            credentials=Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY),
            rate=RATE,
            per=PER,
            concurrency=100,
            settle_delay=0.0,
        )
        elapsed = time.monotonic() - started
        activities = len(box.state()["activities"])
    with open(results, newline="", encoding="utf-8") as handle:
        kinds = Counter((r["status"], r["error_type"]) for r in csv.DictReader(handle))
    return {
        "seconds": round(elapsed, 2),
        "calls": summary.calls,
        "lookup_calls": summary.lookup_calls,
        "reconciled": summary.reconciled.to_dict(),
        "activities": activities,
        "results": {f"{s}/{t or '-'}": n for (s, t), n in kinds.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="100 rows")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = 100
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as folder:
        tmp = Path(folder)
        source = write_leads_csv(tmp / "leads.csv", args.rows)
        token = tmp / "token.yaml"
        token.write_text(
            EXAMPLE_MAPPING.read_text(encoding="utf-8").replace(
                "\noptions:\n", "\noptions:\n  row_token: mx_Custom_5\n"
            ),
            encoding="utf-8",
        )
        runs = {
            "baseline (no lost answer)": one(source, token, tmp / "a.csv", None),
            "every answer lost, row token": one(source, token, tmp / "b.csv", "drop_after=1"),
            "every answer lost, by content": one(
                source, EXAMPLE_MAPPING, tmp / "c.csv", "drop_after=1"
            ),
        }
    base = runs["baseline (no lost answer)"]["seconds"]
    rows = []
    for name, run in runs.items():
        per_k = run["lookup_calls"] * 1000 / args.rows
        rows.append(
            [
                name,
                run["seconds"],
                round(run["seconds"] - base, 2),
                run["lookup_calls"],
                round(per_k, 1),
                round(per_k / REAL_CEILING / 60, 1),
                run["activities"],
            ]
        )
    print_table(
        f"reconciliation of {args.rows:,} rows (sandbox at {RATE}/{PER:g} s, 20 ms latency)",
        ["run", "s", "extra s", "lookups", "per 1k unknown", "min per 1k at 25/5 s", "activities"],
        rows,
    )
    print()
    emit_json(
        "reconcile",
        {
            "rows": args.rows,
            "runs": runs,
            "per_1000_unknown": {
                name: run["lookup_calls"] * 1000 / args.rows
                for name, run in runs.items()
                if run["lookup_calls"]
            },
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
