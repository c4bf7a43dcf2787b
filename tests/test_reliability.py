"""Reliability II: a full disk, a deleted lock, a cut results file, keys that look alike,
a changed input without metadata. Each test reproduces a hole an attack found."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .conftest import EXAMPLE_MAPPING, ROOT, SANDBOX_KEYS, read_results


def keys_env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key,
        "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key,
    }


def run_import_process(
    source: Path, results: Path, host: str, *extra: str, file_size_limit: int | None = None
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:  # in the child: its files may not grow past the limit (EFBIG)
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        [
            sys.executable, "-m", "importer", "run", str(source), "-m", str(EXAMPLE_MAPPING),
            "--results", str(results), "--host", host, "--rate", "100", "--per", "1",
            "--quiet", *extra,
            # Under a file size limit the ledger could not even be created: these tests are
            # about the results file (tests/ledger test the ledger on a full disk).
            *(["--no-ledger"] if file_size_limit is not None else []),
        ],
        capture_output=True, text=True, env=keys_env(), timeout=120, preexec_fn=limit,
    )  # fmt: skip


def test_a_full_disk_stops_the_run_at_once_with_exit_4_and_loses_nothing(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(120), tmp_path / "r.csv"
    # The file may not grow past 8 KiB: about 60 journal lines, in the middle of the run.
    first = run_import_process(source, results, sandbox.base_url, file_size_limit=8192)
    assert first.returncode == 4, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    assert f"{results}: cannot write the results file (File too large)" in first.stdout
    assert "run the same command again to resume" in first.stdout
    # The line the disk cut off is torn (no newline): lsq-import ignores it, and so does this.
    whole = results.read_bytes()
    results.write_bytes(whole[: whole.rindex(b"\n") + 1])
    recorded = {int(line["row"]): line for line in read_results(results)}
    results.write_bytes(whole)
    ids = {a["Id"] for a in sandbox.activities}
    for line in recorded.values():  # every success it managed to record is real
        if line["status"] == "success":
            assert line["activity_id"] in ids
    assert 0 < len(sandbox.activities) < 120
    # Calls whose intent could not be written never left: they are not counted as calls (the
    # summary said 179 calls for 83 that reached the server).
    counted = int(re.search(r"(\d+) calls \(", first.stdout)[1])  # type: ignore[index]
    assert counted <= len(sandbox.calls)

    second = run_import_process(source, results, sandbox.base_url)
    assert second.returncode in (0, 1), second.stdout + second.stderr
    final = read_results(results)
    assert len(final) == 120
    statuses = {line["status"] for line in final}
    assert statuses <= {"success", "unknown"}
    # Nothing sent twice: one activity per success row, at most one per unknown row.
    successes = [line for line in final if line["status"] == "success"]
    unknown = [line for line in final if line["status"] == "unknown"]
    assert len({line["activity_id"] for line in successes}) == len(successes)
    assert len(successes) <= len(sandbox.activities) <= len(successes) + len(unknown)


def start_import(source: Path, results: Path, host: str, rate: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "importer", "run", str(source), "-m", str(EXAMPLE_MAPPING),
            "--results", str(results), "--host", host, "--rate", str(rate), "--per", "1",
            "--quiet",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=keys_env(),
    )  # fmt: skip


def wait_for_successes(results: Path, n: int, proc: subprocess.Popen[str]) -> None:
    """Poll the journal (not a fixed sleep) until ``n`` rows succeeded."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count(",success,") >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"the import did not reach {n} rows: {proc.poll()}")


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[str]) -> None:
    """Poll an observable condition (not a fixed sleep) while ``proc`` runs."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"the condition did not hold while the import ran: {proc.poll()}")


def test_deleting_the_lock_file_mid_run_does_not_let_a_second_run_in(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(60), tmp_path / "r.csv"
    first = start_import(source, results, sandbox.base_url, rate=20)
    try:
        wait_for_successes(results, 5, first)
        (tmp_path / "r.csv.lock").unlink()
        second = run_import_process(source, results, sandbox.base_url)
        assert second.returncode == 2, second.stdout + second.stderr
        assert "is in use by another lsq-import run" in second.stderr
    finally:
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, out + err
    assert len(sandbox.activities) == 60  # each row once
    assert {line["status"] for line in read_results(results)} == {"success"}


def test_a_results_path_that_is_not_a_file_is_refused(tmp_path, sample_rows) -> None:
    outcome = run_import_process(sample_rows(3), Path("/dev/full"), "http://127.0.0.1:9")
    assert outcome.returncode == 2, outcome.stdout + outcome.stderr
    assert "/dev/full: not a regular file" in outcome.stderr


def test_a_results_file_cut_short_is_refused_not_resent(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(30), tmp_path / "r.csv"
    assert run_import_process(source, results, sandbox.base_url).returncode == 0
    whole = results.read_bytes()
    for cut in (len(whole) // 2, len(whole) - 3):  # half the rows gone; a torn last line
        results.write_bytes(whole[:cut])
        again = run_import_process(source, results, sandbox.base_url)
        assert again.returncode == 2, again.stdout + again.stderr
        assert f"{results} is shorter ({cut} bytes) than when lsq-import last wrote it" in (
            again.stderr
        )
        assert "restore it from a backup" in again.stderr
        assert len(sandbox.activities) == 30  # nothing sent again
    # Cut to its header, emptied, deleted: no outcome can be read, and every row was sent
    # again (118 activities for 59 rows).
    header = whole[: whole.index(b"\n") + 1]
    for cut_to in (header, b"", None):
        if cut_to is None:
            results.unlink()
        else:
            results.write_bytes(cut_to)
        again = run_import_process(source, results, sandbox.base_url)
        assert again.returncode == 2, again.stdout + again.stderr
        assert "than when lsq-import last wrote it" in again.stderr
        assert len(sandbox.activities) == 30
    assert not results.exists()  # the refused run leaves no empty file behind
    results.write_bytes(whole)
    assert run_import_process(source, results, sandbox.base_url).returncode == 0
    assert len(sandbox.activities) == 30


def test_a_resume_right_after_a_run_stays_under_the_limit_across_both(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    """Every run used to start with all slots free: a resume right after a run that filled
    the window sent a second window's worth into it (26 arrivals at 25 per 5 s)."""
    from .conftest import import_into

    sandbox = sandbox_thread(rate=20, per=1.0)
    source, results = sample_rows(60), tmp_path / "r.csv"
    first = import_into(sandbox, source, results, rate=20, per=1.0, limit=25)
    second = import_into(sandbox, source, results, rate=20, per=1.0)
    assert first.this_run["success"] == 25 and second.this_run["success"] == 35
    assert [c.http_status for c in sandbox.calls if c.http_status != 200] == []
    assert sandbox.max_in_window(1.0) <= 20


def test_a_stale_temporary_rewrite_is_removed(tmp_path, sample_rows, sandbox_thread) -> None:
    from .conftest import import_into

    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(5), tmp_path / "r.csv"
    stale = tmp_path / ".r.csv.tmp"  # left by a kill during the final rewrite
    stale.write_text("row,key,status\n2,half-writ")
    assert import_into(sandbox, source, results).exit_status == 0
    assert not stale.exists()


def cli(*args: object, env: dict[str, str] | None = None):
    from click.testing import CliRunner

    from importer.cli import cli as command

    return CliRunner().invoke(command, [str(a) for a in args], env=env)


def test_a_summary_json_that_cannot_be_written_is_refused_before_any_call(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    outcome = cli(
        "run", sample_rows(5), "-m", EXAMPLE_MAPPING, "--results", tmp_path / "r.csv",
        "--host", sandbox.base_url, "--summary-json", tmp_path / "missing" / "s.json",
        env=keys_env(),
    )  # fmt: skip
    assert outcome.exit_code == 2, outcome.output
    assert "--summary-json" in outcome.output and "does not exist" in outcome.output
    assert sandbox.calls == []


def test_report_on_a_binary_file_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "r.csv"
    junk.write_bytes(b"row,key,status,activity_id,lead_id,http_status,error_type,error_message,"
                     b"attempts,finished_at\n\xff\xfe\x00\x81garbage\n")  # fmt: skip
    outcome = cli("report", junk)
    assert outcome.exit_code == 2, outcome.output
    assert outcome.output.startswith(f"Error: {junk}: ") and outcome.output.count("\n") == 1
    assert "internal error" not in outcome.output
    (tmp_path / "b.csv").write_bytes(bytes(range(256)) * 4)
    outcome = cli("report", tmp_path / "b.csv")
    assert outcome.exit_code == 2, outcome.output
    assert "not an lsq-import results file" in outcome.output


def test_a_huge_row_number_in_a_results_file_is_a_damaged_line(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(3), tmp_path / "r.csv"
    assert run_import_process(source, results, sandbox.base_url).returncode == 0
    with results.open("a") as handle:  # would make resume planning allocate ~100 GB
        handle.write("99999999999,x@y,success,a,,200,,,1,2026-01-01T00:00:00Z\n")
    for args in (("report", results), ("run", source, "-m", EXAMPLE_MAPPING, "--results",
                                        results, "--host", sandbox.base_url)):  # fmt: skip
        outcome = cli(*args, env=keys_env())
        assert outcome.exit_code == 2, outcome.output
        assert "line 5 is damaged" in outcome.output


def test_a_results_file_without_its_metadata_is_refused_then_checked_by_its_keys(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    """meta.json deleted and a row inserted at the top: the inserted row was never sent and
    a done row was sent again. Without the metadata the resume is refused; with
    --force-resume, the results file's key column is checked against the input."""
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(10), tmp_path / "r.csv"
    assert run_import_process(source, results, sandbox.base_url, "--limit", "6").returncode == 0
    (tmp_path / "r.csv.meta.json").unlink()
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    inserted = lines[1].replace("@", ".new@", 1)
    source.write_text("".join([lines[0], inserted, *lines[1:]]), encoding="utf-8")
    again = run_import_process(source, results, sandbox.base_url)
    assert again.returncode == 2, again.stdout + again.stderr
    assert f"{results} has outcomes but no r.csv.meta.json beside it" in again.stderr
    forced = run_import_process(source, results, sandbox.base_url, "--force-resume")
    assert forced.returncode == 2, forced.stdout + forced.stderr
    assert f"{results}: row 2 was recorded for another lead than the input's row 2" in (
        forced.stderr
    )
    assert len(sandbox.activities) == 6

    source.write_text("".join(lines), encoding="utf-8")  # the original input: it resumes
    resumed = run_import_process(source, results, sandbox.base_url, "--force-resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert len(sandbox.activities) == 10


def test_a_row_of_the_same_lead_inserted_without_metadata_is_not_sent_twice(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    """Two visits of one lead, then a third inserted at the top with meta.json deleted: the
    keys still match row by row, so the key check alone resent a visit (the attacker's
    case). Refused until the user says --force-resume."""
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = tmp_path / "visits.csv", tmp_path / "r.csv"
    header, *rows = sample_rows(2).read_text(encoding="utf-8").splitlines(keepends=True)
    same = rows[0]
    source.write_text(header + same + same.replace("Price sensitive", "Second visit", 1), "utf-8")
    assert run_import_process(source, results, sandbox.base_url).returncode == 0
    assert len(sandbox.activities) == 2
    (tmp_path / "r.csv.meta.json").unlink()
    text = source.read_text(encoding="utf-8").splitlines(keepends=True)
    source.write_text(
        text[0] + same.replace("Price sensitive", "Third visit", 1) + "".join(text[1:])
    )
    again = run_import_process(source, results, sandbox.base_url)
    assert again.returncode == 2, again.stdout + again.stderr
    assert "no r.csv.meta.json beside it" in again.stderr
    assert len(sandbox.activities) == 2


def test_a_journal_cut_after_a_kill_is_refused_not_resent(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    """kill -9 mid-run, then half the journal cut off: the metadata only knew the size of the
    last final rewrite (none yet), so the lost rows were sent again (42 for 40)."""
    import json
    import signal

    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(60), tmp_path / "r.csv"
    meta = tmp_path / "r.csv.meta.json"
    first = start_import(source, results, sandbox.base_url, rate=10)

    def verified() -> int:
        try:
            return int(json.loads(meta.read_text(encoding="utf-8")).get("verified_bytes") or 0)
        except (OSError, ValueError):
            return 0

    try:
        wait_for_successes(results, 5, first)
        wait_until(lambda: verified() > 0, first)  # fsynced and recorded at least once
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    sent = len(sandbox.activities)
    journal = results.read_bytes()
    cut = journal.rindex(b"\n", 0, verified() // 2) + 1  # whole lines, fewer than recorded
    results.write_bytes(journal[:cut])
    again = run_import_process(source, results, sandbox.base_url)
    assert again.returncode == 2, again.stdout + again.stderr
    assert f"{results} is shorter ({cut} bytes) than when lsq-import last wrote it" in (
        again.stderr
    )
    assert len(sandbox.activities) == sent

    results.write_bytes(journal)  # the journal as the kill left it resumes
    resumed = run_import_process(source, results, sandbox.base_url)
    assert resumed.returncode in (0, 1), resumed.stdout + resumed.stderr
    statuses = [line["status"] for line in read_results(results)]
    assert len(statuses) == 60 and set(statuses) <= {"success", "unknown"}
    # Each success once; a row the kill left ``unknown`` may or may not have landed.
    assert statuses.count("success") <= len(sandbox.activities) <= 60


def test_a_results_file_edited_to_the_same_size_is_refused(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    """A ``success`` line turned into ``failed`` without changing the file's size: the size
    check believed it and the row was sent again (11 for 10)."""
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(10), tmp_path / "r.csv"
    assert run_import_process(source, results, sandbox.base_url, "--limit", "6").returncode == 0
    whole = results.read_text(encoding="utf-8")
    edited = whole.replace(",success,", ",failed,,", 1)  # the same length
    assert len(edited) == len(whole) and edited != whole
    results.write_text(edited, encoding="utf-8")
    again = run_import_process(source, results, sandbox.base_url)
    assert again.returncode == 2, again.stdout + again.stderr
    assert f"{results} was changed since lsq-import last wrote it" in again.stderr
    assert len(sandbox.activities) == 6

    results.write_text(whole, encoding="utf-8")
    assert run_import_process(source, results, sandbox.base_url).returncode == 0
    assert len(sandbox.activities) == 10


def test_an_input_that_breaks_off_mid_run_stops_with_exit_4_and_keeps_every_outcome(
    tmp_path, sample_rows, sandbox_thread, monkeypatch
) -> None:
    """A read error after rows were sent was exit 2 ("nothing was sent") with no summary."""
    import contextlib

    import importer.reader as runner  # the runner opens its input through importer.reader
    from importer.exceptions import InputReadError
    from importer.exitcodes import ExitStatus

    from .conftest import import_into

    real_open = runner.open_input

    @contextlib.contextmanager
    def breaking_open(path, **kwargs):
        with real_open(path, **kwargs) as source:
            rows = source.rows

            def rows_then_error():
                for row in rows():
                    if row.number == 40:
                        raise InputReadError(f"{path}: reading broke off at row 40 (EIO)")
                    yield row

            source.rows = rows_then_error  # type: ignore[method-assign]
            yield source

    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(60), tmp_path / "r.csv"
    monkeypatch.setattr(runner, "open_input", breaking_open)
    summary = import_into(sandbox, source, results)
    assert summary.exit_status is ExitStatus.INTERRUPTED
    assert "reading broke off at row 40" in summary.to_text()
    assert "run the same command again to resume" in summary.to_text()
    lines = read_results(results)
    assert lines and {line["status"] for line in lines} == {"success"}
    assert len(lines) == len(sandbox.activities) < 39

    monkeypatch.setattr(runner, "open_input", real_open)
    again = import_into(sandbox, source, results)
    assert again.exit_status is ExitStatus.SUCCESS, again.to_text()
    assert len(sandbox.activities) == 60


def test_a_log_file_that_fills_up_mid_run_is_one_line_and_the_run_goes_on(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results, log = sample_rows(3), tmp_path / "r.csv", tmp_path / "run.log"
    log.write_text("x" * 4000 + "\n")  # an earlier night's log, nearly at the limit below
    done = run_import_process(
        source, results, sandbox.base_url, "--log-file", str(log), file_size_limit=4096
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Logging error" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"lsq-import: --log-file {log}: cannot write (File too large); "
        "nothing more is logged there, the run goes on"
    ]
    assert [line["status"] for line in read_results(results)] == ["success"] * 3


def test_the_results_folder_is_fsynced_before_the_first_row_and_after_the_final_rename(
    tmp_path, sample_rows, sandbox_thread, monkeypatch
) -> None:
    import stat

    from .conftest import import_into

    sandbox = sandbox_thread(rate=100, per=1.0)
    results = tmp_path / "r.csv"
    folder_syncs: list[tuple[int, int]] = []  # (rows arrived at the sandbox, results inode)
    real = os.fsync

    def fsync(fd: int) -> None:
        synced = os.fstat(fd)
        if stat.S_ISDIR(synced.st_mode) and synced.st_ino == tmp_path.stat().st_ino:
            inode = results.stat().st_ino if results.exists() else -1
            folder_syncs.append((len(sandbox.arrivals("CreateCustom")), inode))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    summary = import_into(sandbox, sample_rows(3), results)
    assert summary.by_status == {"success": 3}
    first, last = folder_syncs[0], folder_syncs[-1]
    assert first[0] == 0 and first[1] != -1  # the new file's name, before any row was sent
    assert last == (3, results.stat().st_ino)  # the rewritten file's name, after the rename
