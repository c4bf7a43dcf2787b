"""Each benchmark script runs in its --quick form and prints its JSON line.

No timing is asserted: the figures depend on the machine; the scripts print them. What can
fail here is a script that no longer runs against the current library, or a JSON line that
lost a figure the README quotes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

EXPECTED = {
    "bench_pacing.py": {
        "importer": {
            "rows_per_s",
            "ratio_to_ceiling",
            "ratio_to_rate",
            "http_429",
            "max_in_window",
        },
        "scaled": {"rows_per_s", "ratio_to_ceiling", "ratio_to_rate", "http_429", "max_in_window"},
        "sequential": {"rows_per_s", "http_429", "lost"},
        "aiolimiter": {"rows_per_s", "http_429", "lost"},
        "throttle": {"recovery_windows", "http_429", "lost", "hammer_calls"},
    },
    "bench_batch.py": {
        phase: {"rows_per_s", "ratio_to_ceiling", "http_429", "max_in_window", "lost"}
        for phase in ("batch", "separate", "resume")
    },
    "bench_validate.py": {
        "csv": {"rows_per_s", "peak_rss_mb", "exit_code"},
        "xlsx": {"rows_per_s", "peak_rss_mb", "exit_code"},
    },
    "bench_resume.py": {"": {"seconds", "lines"}},
    "bench_cpu.py": {"": {"cpu_ms_per_row", "rows_per_s", "http_429"}},
    "bench_reconcile.py": {"": {"rows", "runs", "per_1000_unknown"}},
    "bench_bulk.py": {
        "": {"runs", "latency"},
        "scaled": {"rows_per_s", "cpu_ms_per_row", "http_429"},
    },
    "bench_ledger.py": {
        "import": {"cpu_ms_per_row", "bytes_per_row"},
        "ledger": {"lookup_ms_median", "mb_per_million", "show_ms_median"},
    },
    "bench_memory.py": {
        "run": {"peak_rss_mb", "seconds", "exit_code"},
        "noop": {"peak_rss_mb", "seconds", "exit_code"},
        "read_outcomes": {"seconds", "lines"},
    },
}


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_quick_run_prints_a_json_line_with_its_figures(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, done.stdout[-2000:]
    figures = json.loads(lines[0])
    assert figures["benchmark"] == script.removeprefix("bench_").removesuffix(".py")
    assert {"nproc", "cpu", "python"} <= set(figures["machine"])
    for section, keys in EXPECTED[script].items():
        part = figures[section] if section else figures
        assert keys <= set(part), f"{section or 'top level'} lacks {keys - set(part)}"
