"""The whole path over real loopback sockets: file -> mapping -> pool -> sandbox -> results."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest

from importer import run_import
from importer.exceptions import ImporterError
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


def test_a_rerun_of_a_finished_file_sends_reads_and_rewrites_nothing(
    sandbox_thread, tmp_path, sample_rows
) -> None:
    """The counts stored at the last rewrite answer the rerun: no call (not even the
    preflight), the results file untouched; a file cut since is still refused."""
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(30), tmp_path / "r.csv"
    first = import_into(sandbox, source, results)
    assert first.exit_status is ExitStatus.SUCCESS
    calls, before = len(sandbox.calls), results.stat()
    content = results.read_bytes()
    again = import_into(sandbox, source, results)
    assert again.exit_status is ExitStatus.SUCCESS
    assert again.by_status == {"success": 30} and again.already_done == 30
    assert again.calls == 0 and len(sandbox.calls) == calls
    after = results.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert results.read_bytes() == content
    assert again.fingerprints == first.fingerprints
    results.write_bytes(content[: len(content) // 2].rsplit(b"\n", 1)[0] + b"\n")
    with pytest.raises(ImporterError, match="shorter"):
        import_into(sandbox, source, results)


def test_a_resume_with_nothing_left_to_send_does_not_rewrite_the_file(
    sandbox_thread, tmp_path, sample_rows
) -> None:
    """Every remaining row is skipped (one kept ``unknown``): nothing is appended, so the file,
    already one line per row, is left as it is."""
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(30), tmp_path / "r.csv"
    import_into(sandbox, source, results)
    # Row 5 left unknown by a run (same size: the file still reads as last written).
    lines = results.read_text().splitlines(keepends=True)
    lines[4] = lines[4].replace(",success,", ",unknown,", 1)
    results.write_text("".join(lines))
    meta = results.with_name(results.name + ".meta.json")
    recorded = json.loads(meta.read_text())
    recorded.update(
        complete=False,
        verified_sha256=hashlib.sha256(results.read_bytes()).hexdigest(),
        # The rewrite's note of where its unbroken run of success rows ends: at row 5 now.
        open_from=[5, len("".join(lines[:4]).encode()), 5],
    )
    meta.write_text(json.dumps(recorded))  # as the run that left it unknown would record it
    calls, before = len(sandbox.calls), results.stat()
    content = results.read_bytes()
    summary = import_into(sandbox, source, results, preflight_check=False, reconcile=False)
    assert summary.by_status == {"success": 29, "unknown": 1}
    assert summary.unknown_kept == 1 and summary.already_done == 29
    assert len(sandbox.calls) == calls
    assert summary.report is not None and summary.report.unknown_rows == [5]
    after = results.stat()
    assert after.st_ino == before.st_ino and results.read_bytes() == content


def test_a_kill_between_the_final_rename_and_its_metadata_still_resumes(
    sandbox_thread, tmp_path, sample_rows
) -> None:
    """The rewrite took the name, the metadata still describes the journal before it (and its
    ``pending_*`` the rewrite): a resume accepts the file; any other content is refused."""
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(12), tmp_path / "r.csv"
    import_into(sandbox, source, results, limit=8)
    meta = results.with_name(results.name + ".meta.json")
    recorded = json.loads(meta.read_text())
    rewrite = results.read_bytes()
    journal = rewrite + rewrite.split(b"\n", 1)[1]  # longer than the rewrite, other bytes
    recorded.update(
        verified_bytes=len(journal),
        verified_sha256=hashlib.sha256(journal).hexdigest(),
        pending_bytes=len(rewrite),
        pending_sha256=hashlib.sha256(rewrite).hexdigest(),
    )
    meta.write_text(json.dumps(recorded))
    summary = import_into(sandbox, source, results)
    assert summary.by_status == {"success": 12} and summary.already_done == 8
    assert len(sandbox.activities) == 12

    recorded = json.loads(meta.read_text())
    assert recorded["pending_bytes"] == 0 and recorded["verified_bytes"] == results.stat().st_size
    recorded.update(complete=False, pending_bytes=7, pending_sha256="0" * 64)
    meta.write_text(json.dumps(recorded))
    results.write_bytes(results.read_bytes().replace(b",success,", b",failed,,", 1))
    with pytest.raises(ImporterError, match="was changed since lsq-import last wrote it"):
        import_into(sandbox, source, results)
    assert len(sandbox.activities) == 12


def test_a_rewrite_that_never_took_the_name_is_forgotten_at_the_next_resume(
    sandbox_thread, tmp_path, sample_rows
) -> None:
    """A kill after the rewrite's digest was recorded but before the rename left ``pending_*``
    behind: a later cut of the file to that size passed as "the rewrite" (12 duplicates)."""
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(12), tmp_path / "r.csv"
    import_into(sandbox, source, results, limit=8)
    meta = results.with_name(results.name + ".meta.json")
    recorded = json.loads(meta.read_text())
    shorter = results.read_bytes()[:-1]
    shorter = shorter[: shorter.rindex(b"\n") + 1]  # one line fewer: what the cut will leave
    recorded.update(pending_bytes=len(shorter), pending_sha256=hashlib.sha256(shorter).hexdigest())
    meta.write_text(json.dumps(recorded))
    # The resume's check (a run killed right after it never reaches its own final rewrite).
    from importer.results.file import ResultsFile
    from importer.results.fingerprint import Fingerprints

    with ResultsFile(results).claim() as claimed:
        claimed.check_resume(Fingerprints.of(source, EXAMPLE_MAPPING), force=False)
    assert json.loads(meta.read_text())["pending_bytes"] == 0
    results.write_bytes(shorter)
    with pytest.raises(ImporterError, match="than when lsq-import last wrote it"):
        import_into(sandbox, source, results)
    assert len(sandbox.activities) == 8
