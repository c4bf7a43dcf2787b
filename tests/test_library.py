"""The library surface a scheduler or notebook uses: settings, observers, batch summaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from importer import run_import
from importer.batch import run_batch
from importer.exceptions import ConfigError
from importer.exitcodes import ExitStatus
from importer.results import Result, Status
from importer.settings import ImportSettings

from .conftest import EXAMPLE_MAPPING, SANDBOX_KEYS


class Recorder:
    """An observer that writes down what it is told."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.results: list[Result] = []

    def started(self, input_path: Path) -> None:
        self.events.append(f"started {Path(input_path).name}")

    def skipped(self, n: int = 1) -> None:
        self.events.append(f"skipped {n}")

    def settled(self, result: Result) -> None:
        self.events.append("settled")
        self.results.append(result)

    def finished(self) -> None:
        self.events.append("finished")


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"rate": 0}, "rate must be >= 1"),
        ({"concurrency": 0}, "--concurrency 0"),
        ({"max_calls": 0}, "--max-calls 0"),
        ({"start_row": 1}, "--start-row 1"),
    ],
)
def test_settings_are_checked_once_with_the_options_name(bad: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ImportSettings(**bad)


def test_an_observer_is_told_of_every_row_and_keyword_arguments_win(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(6), tmp_path / "r.csv"
    settings = ImportSettings(host="http://nowhere.invalid", rate=100, per=1.0)
    recorder = Recorder()
    summary = run_import(
        source,
        EXAMPLE_MAPPING,
        results=results,
        settings=settings,
        host=sandbox.base_url,  # the keyword wins over the settings object
        credentials=SANDBOX_KEYS,
        progress=recorder,
    )
    assert summary.exit_status is ExitStatus.SUCCESS, summary.to_text()
    assert recorder.events == [f"started {source.name}", *["settled"] * 6, "finished"]
    assert {r.status for r in recorder.results} == {Status.SUCCESS}
    again = Recorder()
    run_import(
        source, EXAMPLE_MAPPING, results=results, settings=settings, host=sandbox.base_url,
        credentials=SANDBOX_KEYS, progress=again,
    )  # fmt: skip
    # A rerun of a finished file reads no row: the six go by in one event.
    assert again.events == [f"started {source.name}", "skipped 6", "finished"]


def test_batch_budget_counts_the_preflight_and_a_spent_budget_starts_no_file(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    files = [sample_rows(3, f"day{i}.csv") for i in range(2)]
    out = tmp_path / "out"
    out.mkdir()
    batch = run_batch(
        files,
        EXAMPLE_MAPPING,
        results_dir=out,
        host=sandbox.base_url,
        credentials=SANDBOX_KEYS,
        rate=100,
        per=1.0,
        max_calls=6,  # 3 preflight calls and 3 rows: exactly the first file
    )
    assert len(sandbox.calls) == 6
    assert [f.exit_status for f in batch.files] == [
        ExitStatus.SUCCESS,
        ExitStatus.BUDGET_REACHED,
    ]
    assert "0 calls left of the budget, too few" in batch.files[1].message
    assert batch.exit_status is ExitStatus.BUDGET_REACHED

    written = tmp_path / "batch.json"
    batch.write_json(written)
    data = json.loads(written.read_text())
    assert data == batch.to_dict()
    assert data["exit_status"] == 5
    assert [f["results"] for f in data["files"]] == [
        str(out / "day0.results.csv"),
        str(out / "day1.results.csv"),
    ]
    assert data["files"][0]["summary"]["by_status"] == {"success": 3}
    assert data["files"][1]["summary"] is None


def test_batch_files_share_one_pacer_so_the_batch_never_overruns_the_limit(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    # Each file alone fills more than a window; with a pacer per file the next file started
    # with every slot free while the last one's calls were still in the server's window.
    rate, per = 10, 0.5
    sandbox = sandbox_thread(rate=rate, per=per)
    files = [sample_rows(15, f"day{i}.csv") for i in range(3)]
    out = tmp_path / "out"
    out.mkdir()
    batch = run_batch(
        files,
        EXAMPLE_MAPPING,
        results_dir=out,
        host=sandbox.base_url,
        credentials=SANDBOX_KEYS,
        rate=rate,
        per=per,
        ledger=False,  # the files repeat the same rows: with the ledger, only day0 is sent
    )
    assert batch.exit_status is ExitStatus.SUCCESS, batch.to_text()
    assert len(sandbox.activities) == 45
    assert [c.http_status for c in sandbox.calls if c.http_status != 200] == []
    assert sandbox.max_in_window(per) <= rate
    # Each file's summary counts its own calls, not the shared pacer's running total.
    assert [f.summary.calls for f in batch.files if f.summary] == [15, 15, 15]
    assert [f.summary.preflight_calls for f in batch.files if f.summary] == [3, 3, 3]


def test_a_budget_the_preflight_alone_would_spend_is_refused_before_any_call(
    sample_rows, sandbox_thread, tmp_path
) -> None:
    """``--max-calls 2`` spent 3 calls on the preflight check, every night, and sent no row."""
    from importer.exceptions import ConfigError

    from .conftest import import_into

    sandbox = sandbox_thread(rate=100, per=1.0)
    for budget in (1, 2, 3):
        with pytest.raises(ConfigError, match=rf"--max-calls {budget}: the preflight check"):
            import_into(sandbox, sample_rows(3), tmp_path / "r.csv", max_calls=budget)
    assert sandbox.calls == []
    summary = import_into(
        sandbox, sample_rows(3), tmp_path / "r.csv", max_calls=2, preflight_check=False
    )
    assert summary.calls == 2 and len(sandbox.calls) == 2
