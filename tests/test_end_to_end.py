"""The whole path over real loopback sockets: file -> mapping -> pool -> sandbox -> results."""

from __future__ import annotations

from collections import Counter

import pytest

from importer import run_import
from importer.exitcodes import ExitStatus
from importer.results.journal import Result

from .conftest import (
    EXAMPLE_MAPPING,
    SAMPLE_CSV,
    SAMPLE_XLSX,
    SANDBOX_KEYS,
    import_into,
    read_results,
)


def test_real_limit_25_per_5s_never_trips_the_rate_limit(
    sandbox_thread, tmp_path, sample_rows
) -> None:
    """The one test at the real limit: 160 rows at 25 calls per 5 s take about 32 s."""
    source = sample_rows(160)
    emails = {line["email"].casefold() for line in read_results(source)}
    sandbox = sandbox_thread(rate=25, per=5.0)
    summary = run_import(
        source,
        EXAMPLE_MAPPING,
        results=tmp_path / "r.csv",
        host=sandbox.base_url,
        credentials=SANDBOX_KEYS,
        rate=25,
        per=5.0,
    )
    assert summary.by_status == {"success": 160}, summary.to_text()
    statuses = Counter(call.http_status for call in sandbox.calls)
    assert statuses == {200: 163}  # 3 preflight calls and 160 rows: not a single 429
    assert len(sandbox.arrivals("CreateCustom")) == 160
    assert sandbox.max_in_window(5.0) <= 25
    assert len(sandbox.activities) == 160
    assert len(sandbox.leads) == len(emails) < 160  # a shared email: one lead, two activities
    assert summary.exit_status is ExitStatus.SUCCESS


@pytest.mark.parametrize("source", [SAMPLE_CSV, SAMPLE_XLSX], ids=["csv", "xlsx"])
def test_sample_imports_fully_at_a_scaled_limit(sandbox_thread, tmp_path, source) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    summary = import_into(
        sandbox,
        source,
        tmp_path / "r.csv",
    )
    lines = read_results(tmp_path / "r.csv")
    assert [int(line["row"]) for line in lines] == list(range(2, 202))
    assert {line["status"] for line in lines} == {"success"}
    activity_ids = {a["Id"] for a in sandbox.activities}
    assert {line["activity_id"] for line in lines} == activity_ids
    assert {line["lead_id"] for line in lines} == set(sandbox.leads)
    assert sandbox.max_in_window(1.0) <= 100
    assert summary.calls == 200


def test_stopped_run_resumes_without_resending(sandbox_thread, tmp_path) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    results = tmp_path / "r.csv"
    settled: list[int] = []

    def crash_after_60(result: Result) -> None:
        settled.append(result.row)
        if len(settled) == 60:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        import_into(
            sandbox,
            SAMPLE_CSV,
            results,
            on_result=crash_after_60,
        )
    first = read_results(results)
    first_rows = {int(line["row"]) for line in first}
    assert 60 <= len(first) < 200
    assert {line["status"] for line in first} == {"success"}
    sent_first = len(sandbox.activities)
    assert sent_first == len(first)

    summary = import_into(
        sandbox,
        SAMPLE_CSV,
        results,
    )
    assert summary.already_done == len(first)
    # Only the unfinished rows were sent (a retry may add a call: the new run's pacer can't
    # know the calls the crashed run made in the same window).
    assert summary.this_run == {"success": 200 - len(first)}
    assert summary.calls - summary.retries == 200 - len(first)
    lines = read_results(results)
    assert [int(line["row"]) for line in lines] == list(range(2, 202))
    assert {line["status"] for line in lines} == {"success"}
    # Each row landed exactly once: 200 activities with 200 distinct ids, and the first
    # run's rows kept their first activity ids.
    assert len(sandbox.activities) == 200
    assert len({a["Id"] for a in sandbox.activities}) == 200
    before = {int(line["row"]): line["activity_id"] for line in first}
    after = {int(line["row"]): line["activity_id"] for line in lines}
    assert all(after[row] == before[row] for row in first_rows)

    again = import_into(
        sandbox,
        SAMPLE_CSV,
        results,
    )
    assert again.calls == 0 and again.already_done == 200
    assert len(sandbox.activities) == 200


def test_failed_rows_are_recorded_with_the_error_and_retried_on_resume(
    sandbox_thread, tmp_path, sample_rows
) -> None:
    source = sample_rows(10)
    text = source.read_text(encoding="utf-8").splitlines()
    header = text[0].split(",")
    cells = text[3].split(",")
    cells[header.index("email")] = "not-an-email"
    text[3] = ",".join(cells)
    source.write_text("\n".join(text) + "\n", encoding="utf-8")
    sandbox = sandbox_thread(rate=100, per=1.0)
    results = tmp_path / "r.csv"
    summary = import_into(
        sandbox,
        source,
        results,
    )
    assert summary.exit_status is ExitStatus.ROWS_FAILED
    bad = [line for line in read_results(results) if line["status"] != "success"]
    assert [
        (line["row"], line["status"], line["http_status"], line["error_type"]) for line in bad
    ] == [("4", "failed", "500", "MXInvalidInputException")]
    assert bad[0]["attempts"] == "1"

    summary = import_into(
        sandbox,
        source,
        results,
    )
    assert summary.calls == 1  # only the failed row was tried again
    assert len(read_results(results)) == 10


def test_wrong_keys_stop_the_run_before_any_row(sandbox_thread, tmp_path) -> None:
    from importer.exceptions import FatalApiError
    from importer.settings import Credentials

    sandbox = sandbox_thread(rate=100, per=1.0)
    with pytest.raises(FatalApiError, match="refused the keys"):
        run_import(
            SAMPLE_CSV,
            EXAMPLE_MAPPING,
            results=tmp_path / "r.csv",
            host=sandbox.base_url,
            credentials=Credentials("wrong-access-key", "wrong-secret-key"),
            rate=100,
            per=1.0,
            concurrency=2,
        )
    assert 1 <= len(sandbox.calls) <= 2  # the preflight's first metadata calls, nothing else
    assert not (tmp_path / "r.csv").exists()


def test_wrong_keys_mid_run_stop_new_rows(sandbox_thread, tmp_path) -> None:
    """Without the preflight (or if keys are revoked mid-run) a 401 stops the pool."""
    from importer.settings import Credentials

    sandbox = sandbox_thread(rate=100, per=1.0)
    summary = run_import(
        SAMPLE_CSV,
        EXAMPLE_MAPPING,
        results=tmp_path / "r.csv",
        host=sandbox.base_url,
        credentials=Credentials("wrong-access-key", "wrong-secret-key"),
        rate=100,
        per=1.0,
        concurrency=2,
        preflight_check=False,
    )
    assert summary.exit_status is ExitStatus.API_FATAL
    assert "refused the keys" in summary.fatal_message
    assert summary.calls <= 2
    assert len(sandbox.activities) == 0


def test_keys_never_reach_results_or_output(
    sandbox_thread, tmp_path, sample_rows, capfd, caplog
) -> None:
    import logging

    from click.testing import CliRunner

    from importer.cli import cli

    access, secret = "u$rSECRETACCESSKEY0001", "SECRETSECRETKEY0002"
    sandbox = sandbox_thread(rate=100, per=1.0, access_key=access, secret_key=secret)
    source = sample_rows(20)
    content = source.read_text(encoding="utf-8").replace("@", "@@", 1)  # one invalid email
    source.write_text(content, encoding="utf-8")
    results = tmp_path / "r.csv"
    caplog.set_level(logging.DEBUG)
    runner = CliRunner()
    outcome = runner.invoke(
        cli,
        [
            "run",
            str(source),
            "-m",
            str(EXAMPLE_MAPPING),
            "--results",
            str(results),
            "--host",
            sandbox.base_url,
            "--rate",
            "100",
            "--per",
            "1",
        ],
        env={"LSQ_ACCESS_KEY": access, "LSQ_SECRET_KEY": secret},
    )
    assert outcome.exit_code == 1, outcome.output
    captured = capfd.readouterr()
    everything = (
        outcome.output
        + captured.out
        + captured.err
        + caplog.text
        + results.read_text(encoding="utf-8")
    )
    assert "failed" in everything
    for key in (access, secret):
        assert key not in everything
    # ... and the wrong-keys path says what to fix without echoing them.
    bad = runner.invoke(
        cli,
        [
            "run",
            str(source),
            "-m",
            str(EXAMPLE_MAPPING),
            "--results",
            str(tmp_path / "x.csv"),
            "--host",
            sandbox.base_url,
            "--rate",
            "100",
            "--per",
            "1",
        ],
        env={"LSQ_ACCESS_KEY": access + "x", "LSQ_SECRET_KEY": secret + "y"},
    )
    assert bad.exit_code == 3, bad.output
    assert access not in bad.output and secret not in bad.output


def test_filtered_rows_are_recorded_skipped_and_never_sent(
    sandbox_thread, tmp_path, sample_rows
) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        EXAMPLE_MAPPING.read_text()
        + "\nfilters:\n  skip_if:\n    - {column: kyc_status, equals: Rejected, reason: rejected}\n"
    )
    source = sample_rows(30)
    rejected = {
        line_no
        for line_no, line in enumerate(read_results(source), start=2)
        if line["kyc_status"] == "Rejected"
    }
    assert rejected
    sandbox = sandbox_thread(rate=100, per=1.0)
    summary = import_into(
        sandbox,
        source,
        tmp_path / "r.csv",
        mapping=mapping,
    )
    lines = {int(line["row"]): line for line in read_results(tmp_path / "r.csv")}
    assert {row for row, line in lines.items() if line["status"] == "skipped"} == rejected
    assert all(lines[row]["error_message"] == "rejected" for row in rejected)
    assert len(sandbox.activities) == 30 - len(rejected)
    assert summary.exit_status is ExitStatus.SUCCESS
