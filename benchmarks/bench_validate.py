"""Local throughput: ``validate`` (read + map every row, send nothing) on big generated files.

Generates, in a temporary folder, a 1,000,000-row CSV and a 100,000-row XLSX (openpyxl
write-only) with the ten columns of ``mappings/example.yaml`` (a local Asia/Kolkata date-time
among them), then runs ``lsq-import validate INPUT --mapping mappings/example.yaml`` on each in a
subprocess and reports rows/s (wall time of the subprocess, start-up included) and its peak RSS
(``ru_maxrss`` of that one child, from ``os.wait4``).

Until the ``validate`` command exists, the subprocess runs the equivalent loop instead
(``open_input`` + ``Mapping.build`` over every row) and the output says so (``command``).

Targets (issue 5): CSV >= 50,000 rows/s with peak RSS <= 300 MB; XLSX >= 20,000 rows/s.

Memory (``--part memory``): ``validate`` on a 3,000,000-row CSV whose SearchBy keys are all
distinct (the duplicate-key check holds something per distinct key): peak RSS <= 150 MB at
>= 50,000 rows/s. And an XLSX of 500,000 rows read as ``run`` reads it while sending (a worker
process opens it, takes the rows one by one and samples its RSS from ``/proc/self/status``
every 10,000 rows after the first was yielded): RSS while sending <= 150 MB, whatever the
sheet's size; the peak while loading (``VmHWM``) is reported beside it.

    python benchmarks/bench_validate.py                  # both parts, about five minutes
    python benchmarks/bench_validate.py --part memory    # only the memory part
    python benchmarks/bench_validate.py --quick          # a few seconds
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

TARGETS = {
    "csv": {"rows_per_s": 50_000, "peak_rss_mb": 300},
    "xlsx": {"rows_per_s": 20_000},
    "keys": {"rows_per_s": 50_000, "peak_rss_mb": 150},
    "xlsx_sending": {"sending_rss_mb": 150},
}


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


def _status_mb(field: str) -> float:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status, in MB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def sending_worker(source: str) -> None:
    """Read an input the way ``run`` does while sending (one row at a time, held by nobody)
    and print the RSS sampled after the first row was yielded, and the peak before it."""
    # this checkout's reader, not whichever one the venv installed (a script's sys.path starts
    # at benchmarks/, not at the checkout)
    sys.path.insert(0, str(ROOT))
    from importer.reader import open_input

    rows = 0
    samples: list[float] = []
    started = time.monotonic()
    with open_input(source) as handle:
        opened = time.monotonic() - started
        for _ in handle.rows():
            rows += 1
            if rows == 1:
                loading_peak = _status_mb("VmHWM")
            if rows % 10_000 == 1:
                samples.append(_status_mb("VmRSS"))
    samples.append(_status_mb("VmRSS"))
    print(
        json.dumps(
            {
                "rows_read": rows,
                "open_seconds": round(opened, 2),
                "loading_peak_mb": round(loading_peak, 1),
                "sending_rss_mb": round(max(samples), 1),
                "first_row_rss_mb": round(samples[0], 1),
            }
        )
    )


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
    parser.add_argument("--keys-rows", type=int, default=None, help="distinct keys (3,000,000)")
    parser.add_argument("--sending-rows", type=int, default=None, help="XLSX rows (500,000)")
    parser.add_argument(
        "--part", choices=("all", "throughput", "memory"), default="all", help="what to measure"
    )
    parser.add_argument("--worker", nargs=2, metavar=("INPUT", "MAPPING"), help=argparse.SUPPRESS)
    parser.add_argument("--sending-worker", metavar="INPUT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        equivalent_loop(*args.worker)
        return 0
    if args.sending_worker:
        sending_worker(args.sending_worker)
        return 0
    throughput = args.part in ("all", "throughput")
    memory = args.part in ("all", "memory")
    csv_rows = args.csv_rows or (5_000 if args.quick else 1_000_000)
    xlsx_rows = args.xlsx_rows or (500 if args.quick else 100_000)
    keys_rows = args.keys_rows or (20_000 if args.quick else 3_000_000)
    sending_rows = args.sending_rows or (2_000 if args.quick else 500_000)
    use_cli = validate_available() and not args.loop
    label = "lsq-import validate" if use_cli else "equivalent loop (open_input + Mapping.build)"
    results: dict[str, Any] = {"quick": args.quick, "command": label}
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as folder:
        tmp = Path(folder)
        inputs = {}
        wanted = []
        if throughput:
            wanted += [("csv", csv_rows, write_leads_csv), ("xlsx", xlsx_rows, write_leads_xlsx)]
        if memory:
            # lead_values gives every row its own e-mail: as many distinct keys as rows
            wanted += [("keys", keys_rows, write_leads_csv)]
        for kind, rows, write in wanted:
            suffix = "xlsx" if write is write_leads_xlsx else "csv"
            started = time.monotonic()
            path = write(tmp / f"leads-{kind}.{suffix}", rows)
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
        if memory:
            started = time.monotonic()
            path = write_leads_xlsx(tmp / "sending.xlsx", sending_rows)
            generated = time.monotonic() - started
            figures = measure([sys.executable, __file__, "--sending-worker", str(path)])
            if figures["exit_code"] == 0:
                figures.update(json.loads(figures["output_tail"][-1]))
            figures.update(
                rows=sending_rows,
                file_mb=round(path.stat().st_size / 2**20, 1),
                generate_seconds=round(generated, 1),
                target=TARGETS["xlsx_sending"],
            )
            results["xlsx_sending"] = figures
    print(f"command: {label}")
    shown = [kind for kind in ("csv", "xlsx", "keys") if kind in results]
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
                results[kind]["peak_rss_mb"],  # the keys' target: <= 150
                results[kind]["exit_code"],
            ]
            for kind in shown
        ],
    )
    if "xlsx_sending" in results:
        part = results["xlsx_sending"]
        print()
        print_table(
            "XLSX read one row at a time, as while sending (RSS of the reading process)",
            ["rows", "MB", "open s", "peak while loading MB", "RSS while sending MB", "target"],
            [
                [
                    f"{part['rows']:,}",
                    part["file_mb"],
                    part.get("open_seconds"),
                    part.get("loading_peak_mb"),
                    part.get("sending_rss_mb"),
                    f"<= {TARGETS['xlsx_sending']['sending_rss_mb']}",
                ]
            ],
        )
    print()
    emit_json("validate", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
