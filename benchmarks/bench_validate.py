"""Local throughput: ``validate`` (read + map every row, send nothing) on big generated files.

Generates, in a temporary folder, a 1,000,000-row CSV and a 100,000-row XLSX (openpyxl
write-only) with the ten columns of ``mappings/example.yaml`` (a local Asia/Kolkata date-time
among them), then runs ``lsq-import validate INPUT --mapping mappings/example.yaml`` on each in a
subprocess and reports rows/s (wall time of the subprocess, start-up included) and its peak RSS
(``ru_maxrss`` of that one child, from ``os.wait4``).

Until the ``validate`` command exists, the subprocess runs the equivalent loop instead
(``open_input`` + ``Mapping.build`` over every row) and the output says so (``command``).

Targets (issue 5): CSV >= 50,000 rows/s with peak RSS <= 300 MB; XLSX >= 20,000 rows/s.

    python benchmarks/bench_validate.py            # about a minute
    python benchmarks/bench_validate.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    EXAMPLE_MAPPING,
    ROOT,
    emit_json,
    print_table,
    write_leads_csv,
    write_leads_xlsx,
)

TARGETS = {"csv": {"rows_per_s": 50_000, "peak_rss_mb": 300}, "xlsx": {"rows_per_s": 20_000}}


def validate_available() -> bool:
    """Whether this checkout's CLI has a ``validate`` command yet."""
    probe = subprocess.run(
        [sys.executable, "-m", "importer", "validate", "--help"],
        capture_output=True,
        cwd=ROOT,
    )
    return probe.returncode == 0


def equivalent_loop(source: str, mapping_path: str) -> None:
    """What ``validate`` does, for checkouts without it: read, check columns, map every row."""
    from importer.mapping import RowError, load_mapping
    from importer.reader import open_input

    mapping = load_mapping(mapping_path)
    ok = invalid = 0
    with open_input(source) as handle:
        mapping.check_columns(handle.columns, source)
        for row in handle.rows():
            try:
                mapping.build(row)
                ok += 1
            except RowError:
                invalid += 1
    print(json.dumps({"ok": ok, "invalid": invalid}))


def measure(command: list[str]) -> dict[str, Any]:
    """Wall time and peak RSS of one child process (its own rusage, via ``os.wait4``)."""
    with tempfile.TemporaryFile() as out:
        started = time.monotonic()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        tail = out.read()[-2000:].decode(errors="replace")
    return {
        "seconds": round(elapsed, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux reports kilobytes
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "exit_code": proc.returncode,
        "output_tail": tail.strip().splitlines()[-1:] if tail.strip() else [],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 CSV rows, 500 XLSX rows")
    parser.add_argument("--csv-rows", type=int, default=None)
    parser.add_argument("--xlsx-rows", type=int, default=None)
    parser.add_argument(
        "--loop", action="store_true", help="measure the equivalent loop even if validate exists"
    )
    parser.add_argument("--worker", nargs=2, metavar=("INPUT", "MAPPING"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        equivalent_loop(*args.worker)
        return 0
    csv_rows = args.csv_rows or (5_000 if args.quick else 1_000_000)
    xlsx_rows = args.xlsx_rows or (500 if args.quick else 100_000)
    use_cli = validate_available() and not args.loop
    label = "lsq-import validate" if use_cli else "equivalent loop (open_input + Mapping.build)"
    results: dict[str, Any] = {"quick": args.quick, "command": label}
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as folder:
        tmp = Path(folder)
        inputs = {}
        for kind, rows, write in (
            ("csv", csv_rows, write_leads_csv),
            ("xlsx", xlsx_rows, write_leads_xlsx),
        ):
            started = time.monotonic()
            path = write(tmp / f"leads.{kind}", rows)
            inputs[kind] = (path, rows, time.monotonic() - started)
        for kind, (path, rows, generated) in inputs.items():
            if use_cli:
                command = [sys.executable, "-m", "importer", "validate", str(path)]
                command += ["--mapping", str(EXAMPLE_MAPPING)]
            else:
                command = [sys.executable, __file__, "--worker", str(path), str(EXAMPLE_MAPPING)]
            figures = measure(command)
            figures.update(
                rows=rows,
                file_mb=round(path.stat().st_size / 2**20, 1),
                generate_seconds=round(generated, 1),
                rows_per_s=round(rows / figures["seconds"]),
                cpu_us_per_row=round(figures["cpu_seconds"] / rows * 1e6, 2),
                target=TARGETS[kind],
            )
            results[kind] = figures
    print(f"command: {label}")
    print_table(
        "validate throughput (wall time of the subprocess, start-up included)",
        ["input", "rows", "MB", "s", "rows/s", "target", "peak RSS MB", "exit"],
        [
            [
                kind,
                f"{results[kind]['rows']:,}",
                results[kind]["file_mb"],
                results[kind]["seconds"],
                f"{results[kind]['rows_per_s']:,}",
                f">= {TARGETS[kind]['rows_per_s']:,}",
                results[kind]["peak_rss_mb"],
                results[kind]["exit_code"],
            ]
            for kind in ("csv", "xlsx")
        ],
    )
    print()
    emit_json("validate", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
