"""Command-line conventions users of csvkit, sqlite-utils and httpie expect: a closed pipe,
``-`` for stdin and stdout, help, version, JSON summaries, shell completion."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

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


def sample_csv(path: Path, rows: int, bad_date_at: int | None = None) -> Path:
    """The sample's first ``rows`` rows; the ``bad_date_at``-th (1-based) with a date no
    format of the example mapping reads: an invalid row."""
    lines = SAMPLE_CSV.read_text(encoding="utf-8-sig").splitlines(True)[: rows + 1]
    if bad_date_at is not None:
        lines[bad_date_at] = re.sub(r"\d\d/\d\d/(\d{4})", r"77/13/\1", lines[bad_date_at], count=1)
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_validate_reads_a_csv_from_stdin(tmp_path: Path) -> None:
    data = sample_csv(tmp_path / "leads.csv", 5, bad_date_at=2).read_bytes()
    result = invoke("validate", "-", "-m", EXAMPLE_MAPPING, input=data)
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("<stdin>: 5 rows checked in "), result.stdout
    assert "4 valid, 1 invalid" in result.stdout and "row 3:" in result.stdout
    assert not (tmp_path / "-").exists() and not Path("-").exists()


def test_validate_reads_an_excel_workbook_from_stdin_with_format() -> None:
    from .conftest import SAMPLE_XLSX

    result = invoke(
        "validate", "-", "-m", EXAMPLE_MAPPING, "--format", "xlsx", input=SAMPLE_XLSX.read_bytes()
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("<stdin>: 200 rows checked in "), result.stdout


def test_the_stdin_formats_are_the_readers_file_types() -> None:
    from importer.cli import _FORMATS
    from importer.reader.stdin import FORMATS

    assert set(_FORMATS) == set(FORMATS)


def test_a_missing_column_in_stdin_is_named_as_stdin(tmp_path: Path) -> None:
    result = invoke("validate", "-", "-m", EXAMPLE_MAPPING, input=b"first_name,emial\nA,a@x.com\n")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and "<stdin>" in result.stderr
    assert result.stderr.count("\n") == 1


def test_validate_from_a_terminal_says_to_pipe_a_file() -> None:
    # `lsq-import validate - -m map.yaml` typed without a redirect would wait for typing.
    import pty

    parent, child = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "importer", "validate", "-", "-m", str(EXAMPLE_MAPPING)],
            stdin=child,
            capture_output=True,
            text=True,
            timeout=60,
            env=child_env(),
        )
    finally:
        os.close(child)
        os.close(parent)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "stdin" in done.stderr and "terminal" in done.stderr


def test_validate_payloads_to_stdout_and_the_summary_to_stderr(tmp_path: Path) -> None:
    source = sample_csv(tmp_path / "leads.csv", 4, bad_date_at=1)
    result = invoke("validate", source, "-m", EXAMPLE_MAPPING, "--payloads", "-")
    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["row"] for line in lines] == [3, 4, 5]
    assert {"LeadDetails"} <= set(lines[0]["body"])
    assert "4 rows checked" in result.stderr and "3 valid, 1 invalid" in result.stderr
    assert "request bodies of the 3 valid rows: <stdout>" in result.stderr
    assert not Path("-").exists()


def test_validate_payloads_to_a_pipe_cut_short_still_ends_with_its_exit_code(
    tmp_path: Path,
) -> None:
    # The sample's 200 bodies are far more than a pipe holds; the reader takes one and goes.
    source = sample_csv(tmp_path / "leads.csv", 10_000, bad_date_at=7)
    proc = lsq_import(
        "validate", source, "-m", EXAMPLE_MAPPING, "--payloads", "-", stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = json.loads(proc.stdout.readline())
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1, err  # one row is invalid: the code it would have had
    assert first["row"] == 2
    assert "200 rows checked" in err and "199 valid, 1 invalid" in err
    assert "Traceback" not in err and "Error" not in err


@pytest.mark.parametrize("flag", [["--json", "-"], ["--json"]])
def test_validate_json_summary_on_stdout(tmp_path: Path, flag: list[str]) -> None:
    source = sample_csv(tmp_path / "leads.csv", 3, bad_date_at=3)
    result = invoke("validate", source, "-m", EXAMPLE_MAPPING, *flag)
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)  # nothing but the JSON
    assert (summary["rows"], summary["valid"], summary["invalid"]) == (3, 2, 1)
    assert summary["invalid_by_column"] == {"visited_at": 1} and summary["exit_status"] == 1
    assert result.stderr == ""


def test_validate_json_to_a_file_keeps_the_text_summary(tmp_path: Path) -> None:
    source = sample_csv(tmp_path / "leads.csv", 3)
    result = invoke("validate", source, "-m", EXAMPLE_MAPPING, "--json", tmp_path / "v.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "v.json").read_text())["valid"] == 3
    assert "3 rows checked" in result.stdout and "no invalid rows" in result.stdout


@pytest.mark.parametrize("flag", [["--json", "-"], ["--json"]])
def test_report_json_on_stdout(tmp_path: Path, flag: list[str]) -> None:
    results = results_with(tmp_path / "r.csv", ["success", "failed"])
    result = invoke("report", results, *flag)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["by_status"] == {"success": 1, "failed": 1}
    assert not Path("-").exists() and not (tmp_path / "-").exists()


@pytest.mark.parametrize("option", ["--summary-json", "--json"])
def test_run_summary_json_on_stdout(tmp_path: Path, option: str, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    source = sample_csv(tmp_path / "leads.csv", 3)
    result = invoke(
        "run", source, "-m", EXAMPLE_MAPPING, "--sandbox", "--rate", "100", "--per", "1",
        option, "-",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["by_status"] == {"success": 3} and summary["exit_status"] == 0
    assert not (tmp_path / "-").exists()


def test_run_refuses_stdin_as_input(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = sample_csv(tmp_path / "leads.csv", 3).read_bytes()
    result = invoke("run", "-", "-m", EXAMPLE_MAPPING, "--sandbox", input=data)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.count("\n") == 0 and message.startswith("Error: INPUT -: run does not read")
    assert "results file" in message and "validate" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leads.csv"]


@pytest.mark.parametrize(
    "args",
    [
        ["report", "R", "--html", "-"],
        ["validate", "IN", "-m", EXAMPLE_MAPPING, "--results", "-"],
        ["run", "IN", "-m", EXAMPLE_MAPPING, "--sandbox", "--results", "-"],
        ["run", "IN", "-m", EXAMPLE_MAPPING, "--sandbox", "--log-file", "-"],
    ],
)
def test_a_file_option_refuses_dash_instead_of_making_a_file_named_dash(
    tmp_path: Path, monkeypatch, args: list[str | Path]
) -> None:
    monkeypatch.chdir(tmp_path)
    given = {"R": results_with(tmp_path / "r.csv", ["success"]), "IN": sample_csv(
        tmp_path / "leads.csv", 2
    )}  # fmt: skip
    result = invoke(*[given.get(a, a) if isinstance(a, str) else a for a in args])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and " -: " in result.stderr, result.stderr
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["validate", "IN", "-m", EXAMPLE_MAPPING, "--format", "csv"], "--format csv"),
        (["validate", "-", "-m", EXAMPLE_MAPPING, "--payloads", "-", "--json", "-"], "only one"),
    ],
)
def test_stdin_and_stdout_options_that_do_not_go_together(
    tmp_path: Path, args: list[str | Path], needle: str
) -> None:
    source = sample_csv(tmp_path / "leads.csv", 2)
    result = invoke(*[source if a == "IN" else a for a in args], input=source.read_bytes())
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and needle in result.stderr, result.stderr


def test_the_documented_bash_completion_completes_commands_and_statuses(tmp_path: Path) -> None:
    # The README's line, in a real bash, with `lsq-import` on PATH as an install puts it.
    import shutil

    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash here")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "lsq-import"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -m importer "$@"\n')
    script.chmod(0o755)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = 'eval "$(_LSQ_IMPORT_COMPLETE=bash_source lsq-import)"'
    assert line in readme

    def complete(*words: str) -> list[str]:
        program = (
            f"{line}\n"
            f"COMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}\n"
            "_lsq_import_completion lsq-import\n"  # as bash calls it: the command name first
            'printf "%s\\n" "${COMPREPLY[@]}"\n'
        )
        done = subprocess.run(
            [bash, "--norc", "-c", program],
            capture_output=True,
            text=True,
            timeout=60,
            env=child_env(PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"),
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("lsq-import", "rep") == ["report"]
    assert complete("lsq-import", "report", "r.csv", "--fail-on", "failed,u") == ["failed,unknown"]
    assert complete("lsq-import", "validate", "-", "--format", "xls") == ["xlsx", "xlsm", "xls"]


@pytest.mark.parametrize("extra", [[], ["--example"]])
def test_init_mapping_refuses_dash_instead_of_writing_a_file_named_dash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str]
) -> None:
    from importer.cli import cli

    monkeypatch.chdir(tmp_path)
    args = ["init-mapping", *extra, "--output", "-"]
    if not extra:
        args.insert(1, str(Path(__file__).parent.parent / "sample_data" / "leads.csv"))
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "--output -: init-mapping writes a file" in result.output
    assert not (tmp_path / "-").exists()
