"""Command-line conventions users of csvkit, sqlite-utils and httpie expect: a closed pipe,
``-`` for stdin and stdout, help, version, JSON summaries, shell completion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from .conftest import EXAMPLE_MAPPING, ROOT, SAMPLE_CSV

RESULTS_HEADER = (
    "row,key,status,activity_id,lead_id,http_status,error_type,error_message,attempts,finished_at\n"
)


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("LSQ_ACCESS_KEY", "LSQ_SECRET_KEY", "LSQ_HOST"):
        env.pop(name, None)
    return {**env, **extra}


def lsq_import(*args: str | Path, **kwargs) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "importer", *map(str, args)],
        stderr=subprocess.PIPE,
        env=kwargs.pop("env", None) or child_env(),
        **kwargs,
    )


def many_successes(path: Path, rows: int) -> Path:
    with open(path, "w", encoding="utf-8") as out:
        out.write(RESULTS_HEADER)
        for row in range(2, rows + 2):
            out.write(f"{row},lead{row}@example.com,success,A{row},L{row},200,,,1,")
            out.write("2026-01-01T00:00:00Z\n")
    return path


def test_a_listing_cut_short_by_head_ends_quietly(tmp_path: Path) -> None:
    # `lsq-import report R.csv --status success | head -1`: 20,000 lines, far more than a pipe
    # holds, so the command is still writing when its reader goes away.
    results = many_successes(tmp_path / "r.csv", 20_000)
    proc = lsq_import("report", results, "--status", "success", stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what head does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert first == b"row,key,error_type,error_message\n"
    assert err == ""  # no "internal error", no "Broken pipe", no traceback


@pytest.mark.parametrize(
    "command", ["run", "validate", "report", "init-mapping", "--help", "run --help"]
)
def test_every_command_ends_quietly_when_nobody_reads_stdout(tmp_path: Path, command: str) -> None:
    # The pipe's reader is gone before the command writes a byte (`... | true`): every write
    # to stdout fails, deterministically. The exit code is the one the command would have had.
    source = tmp_path / "leads.csv"
    source.write_text("".join(SAMPLE_CSV.read_text(encoding="utf-8").splitlines(True)[:4]))
    args: list[str | Path] = {
        "run": ["run", source, "-m", EXAMPLE_MAPPING, "--sandbox", "--rate", "100", "--per", "1"],
        "validate": ["validate", source, "-m", EXAMPLE_MAPPING],
        "report": ["report", many_successes(tmp_path / "done.csv", 3)],
        "init-mapping": ["init-mapping", source, "-o", tmp_path / "m.yaml"],
        "--help": ["--help"],
        "run --help": ["run", "--help"],
    }[command]
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = lsq_import(*args, stdout=write_end, cwd=tmp_path)
    finally:
        os.close(write_end)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert err == "", err


def test_with_a_log_file_and_quiet_stderr_holds_no_log_line(tmp_path: Path, sandbox_thread) -> None:
    # A cron run: docs/scheduling.md promises the mail holds just the summary. Retries and
    # failed rows make DEBUG and INFO records; they all go to the file.
    from importer.sandbox import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, FaultConfig

    sandbox = sandbox_thread(rate=100, per=1.0, faults=FaultConfig(error_500_plain=1.0, seed=3))
    source = tmp_path / "leads.csv"
    source.write_text("".join(SAMPLE_CSV.read_text(encoding="utf-8").splitlines(True)[:11]))
    log = tmp_path / "run.log"
    done = subprocess.run(
        [sys.executable, "-m", "importer", "run", str(source), "-m", str(EXAMPLE_MAPPING)]
        + ["--host", sandbox.base_url, "--rate", "100", "--per", "1", "--quiet"]
        + ["--max-attempts", "2", "--retry-delay", "0.01", "--retry-max-delay", "0.02"]
        + ["--log-file", str(log), "--log-level", "debug"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=child_env(LSQ_ACCESS_KEY=DEFAULT_ACCESS_KEY, LSQ_SECRET_KEY=DEFAULT_SECRET_KEY),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    logged = log.read_text(encoding="utf-8")
    assert "preflight:" in logged and "row 2: failed after 2 attempts" in logged, logged
    assert done.stderr == ""
    assert "rows in" in done.stdout and "DEBUG" not in done.stdout


def invoke(*args: str | Path, **kwargs):
    from click.testing import CliRunner

    from importer.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


def test_a_bare_lsq_import_prints_the_help_and_exits_0() -> None:
    result = invoke(prog_name="lsq-import")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: lsq-import") and "Commands:" in result.stdout


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_the_version_has_a_short_flag(flag: str) -> None:
    from importer import __version__

    result = invoke(flag)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"lsq-import, version {__version__}"


def test_the_command_summaries_are_not_cut() -> None:
    from importer.cli import cli

    result = invoke("--help")
    assert result.exit_code == 0, result.output
    listing = " ".join(result.stdout.split("Commands:")[1].split())
    assert "..." not in listing
    for name, command in cli.commands.items():
        assert command.short_help, name
        assert f"{name} {command.short_help}" in listing, listing


def test_every_option_of_every_command_has_a_help_text() -> None:
    from importer.cli import cli

    missing = [
        f"{name} {param.opts[0]}"
        for name, command in cli.commands.items()
        for param in command.params
        if isinstance(param, click.Option) and not param.help
    ]
    assert missing == []


def test_run_help_names_each_retry_delay_with_one_value() -> None:
    result = invoke("run", "--help")
    assert result.exit_code == 0, result.output
    assert "--retry-delay SECONDS" in result.stdout
    assert "--retry-max-delay SECONDS" in result.stdout


def results_with(path: Path, statuses: list[str]) -> Path:
    with open(path, "w", encoding="utf-8") as out:
        out.write(RESULTS_HEADER)
        for row, status in enumerate(statuses, start=2):
            error = "" if status == "success" else "SomeError,went wrong"
            error = error or ","
            out.write(f"{row},lead{row}@example.com,{status},,,500,{error},1,")
            out.write("2026-01-01T00:00:00Z\n")
    return path


@pytest.mark.parametrize("listing", [[], ["--status", "failed"]])
def test_report_fail_on_exits_1_with_one_line_when_such_rows_are_there(
    tmp_path: Path, listing: list[str]
) -> None:
    results = results_with(
        tmp_path / "r.csv", ["success", "failed", "unknown", "failed", "invalid"]
    )
    result = invoke("report", results, *listing, "--fail-on", "failed,unknown")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stderr.strip() == (
        f"Error: {results} holds 2 failed, 1 unknown rows (--fail-on failed,unknown)"
    )
    assert result.stdout  # the report (or the listing) is still printed


def test_report_fail_on_exits_0_when_no_such_row_is_there(tmp_path: Path) -> None:
    results = results_with(tmp_path / "r.csv", ["success", "invalid", "skipped"])
    result = invoke("report", results, "--fail-on", "failed,unknown")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


@pytest.mark.parametrize("value", ["failed,bogus", "sending", ","])
def test_report_fail_on_refuses_what_is_not_a_status(tmp_path: Path, value: str) -> None:
    results = results_with(tmp_path / "r.csv", ["success"])
    result = invoke("report", results, "--fail-on", value)
    assert result.exit_code == 2, result.output
    assert "--fail-on" in result.stderr and "comma-separated list of success" in result.stderr
