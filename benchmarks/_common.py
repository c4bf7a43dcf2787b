"""Shared pieces of the benchmark scripts: generated inputs, a sandbox process, reporting.

Not a public module: each ``bench_*.py`` script imports it from its own folder. Inputs are
generated on the fly (deterministic, fast) so nothing large is ever committed.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Each benchmark process has a data directory of its own, so the ledgers its imports keep (one
# per account, in the data directory: importer.ledger) are neither the user's nor remember the
# rows of the previous run; its subprocesses inherit it.
_DATA = tempfile.TemporaryDirectory(prefix="bench-data-")
os.environ["XDG_DATA_HOME"] = _DATA.name
os.environ.pop("LSQ_LEDGER", None)

EXAMPLE_MAPPING = ROOT / "mappings" / "example.yaml"

# The ten columns mappings/example.yaml maps (visited_at is a local Asia/Kolkata date-time).
COLUMNS = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "city",
    "kyc_status",
    "visited_at",
    "amount",
    "product",
    "notes",
]
_FIRST = ["Aarav", "Aditi", "Ananya", "Arjun", "Zoë", "José", "Meera", "Rahul", "Sneha", "Liam"]
_LAST = ["Sharma", "Iyer", "D'Souza", "Müller", "García", "Nair", "Khan", "Smith", "Rao", "Das"]
_CITIES = ["Mumbai", "Pune", "Bengaluru", "Chennai", "Kolkata", "Delhi", "London", "Dubai"]
_KYC = ["Pending", "Verified", "Rejected"]
_PRODUCTS = [("Credit Card", "999.00"), ("Mutual Fund SIP", "2500"), ("Demat Account", "0")]
_NOTES = [
    "",
    "Walk-in",
    "Price sensitive, compare with competitor offer",
    'Said "not now", follow up next quarter',
    "Needs PAN card copy, Aadhaar pending",
]


def lead_values(i: int) -> list[Any]:
    """Row ``i`` of the generated leads; e-mails are unique so no row waits for another."""
    product, amount = _PRODUCTS[i % len(_PRODUCTS)]
    # Office hours on a day in 2024-2025: never midnight, which Excel would show as a bare date.
    day = dt.date(2024, 1, 1) + dt.timedelta(days=(i * 7) % 700)
    visited = dt.datetime.combine(day, dt.time(9 + i % 13, (i * 17) % 60))
    return [
        _FIRST[i % len(_FIRST)],
        _LAST[(i // 10) % len(_LAST)],
        f"lead{i}@example.com",
        f"+91 9{i % 10_000:04d} {i % 100_000:05d}",
        _CITIES[i % len(_CITIES)],
        _KYC[i % len(_KYC)],
        visited,
        amount,
        product,
        _NOTES[i % len(_NOTES)],
    ]


def write_leads_csv(path: Path, rows: int) -> Path:
    """A CSV in the layout of sample_data/leads.csv (``visited_at`` as ``dd/mm/YYYY HH:MM``)."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        batch: list[list[Any]] = []
        for i in range(rows):
            values = lead_values(i)
            values[6] = values[6].strftime("%d/%m/%Y %H:%M")
            batch.append(values)
            if len(batch) == 10_000:
                writer.writerows(batch)
                batch.clear()
        writer.writerows(batch)
    return path


def write_leads_xlsx(path: Path, rows: int) -> Path:
    """The same rows as an .xlsx (openpyxl write-only), ``visited_at`` a real date-time cell."""
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Leads")
    sheet.append(COLUMNS)
    for i in range(rows):
        sheet.append(lead_values(i))
    book.save(path)
    return path


class SandboxProcess:
    """``python -m importer sandbox`` in its own process (so it gets its own core and GIL).

    ``with SandboxProcess(rate=25, per=5, latency=0.6, jitter=0.3, seed=1) as box:`` then
    ``box.base_url``, ``box.state()`` (GET /_sandbox/state) and ``box.reset()``.
    """

    def __init__(
        self,
        *,
        rate: int,
        per: float,
        latency: float = 0.0,
        jitter: float = 0.0,
        seed: int | None = 1,
        faults: str | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self.args = [
            sys.executable,
            "-m",
            "importer",
            "sandbox",
            "--port",
            "0",
            "--rate",
            str(rate),
            "--per",
            repr(float(per)),
            "--latency",
            repr(float(latency)),
            "--jitter",
            repr(float(jitter)),
        ]
        if seed is not None:
            self.args += ["--seed", str(seed)]
        if faults:
            self.args += ["--faults", faults]
        self.args += list(extra)  # e.g. --plan super, --bulk-rate 10
        self.base_url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def start(self) -> SandboxProcess:
        """Launch the process without waiting for it (to start several at once)."""
        if self._proc is None:
            env = {k: v for k, v in os.environ.items() if not k.startswith("LSQ_")}
            # stderr to a file, not a pipe: a pipe nobody drains would block the server.
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
            self._proc = subprocess.Popen(
                self.args, stdout=subprocess.DEVNULL, stderr=self._log, env=env, cwd=ROOT
            )
        return self

    def __enter__(self) -> SandboxProcess:
        """Wait until it listens (launching it first if :meth:`start` was not called)."""
        self.start()
        assert self._proc is not None and self._log is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self._log.seek(0)
            text = self._log.read().decode(errors="replace")
            found = re.search(r"sandbox on (http://\S+)", text)
            if found:
                self.base_url = found.group(1)
                return self
            if self._proc.poll() is not None:
                raise RuntimeError(f"the sandbox exited: {text.strip()}")
            time.sleep(0.02)
        self.__exit__()
        raise RuntimeError("the sandbox did not start within 30 s")

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()

    def state(self) -> dict[str, Any]:
        """The sandbox's calls, leads and activities."""
        with urllib.request.urlopen(self.base_url + "/_sandbox/state", timeout=60) as resp:
            return json.loads(resp.read())

    def reset(self) -> None:
        """Forget calls, leads and the rate-limit window (between phases)."""
        request = urllib.request.Request(self.base_url + "/_sandbox/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as resp:
            resp.read()


def max_in_window(times: Iterable[float], per: float) -> int:
    """The most arrivals in any window ``(t - per, t]`` (as ``Sandbox.max_in_window``)."""
    ordered = sorted(times)
    best = lo = 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - per:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain fixed-width table on stdout."""

    def show(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    cells = [[show(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def emit_json(name: str, results: dict[str, Any]) -> None:
    """The one machine-readable line of a benchmark: ``{"benchmark": name, ...}``."""
    print(json.dumps({"benchmark": name, "machine": machine(), **results}, sort_keys=False))
