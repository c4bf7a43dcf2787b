"""The command line as a user meets it: options, one-line errors, exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from importer import __version__
from importer.cli import cli

from .conftest import EXAMPLE_MAPPING, ROOT, SANDBOX_KEYS, read_results

KEYS_ENV = {"LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key, "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key}


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def assert_one_line_error(result, code: int, *needles: str) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert message.count("\n") == 0, message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.mark.parametrize("command", [[], ["run"], ["sandbox"]])
def test_help_has_an_example(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Example" in result.output or "lsq-import run" in result.output


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "x.csv"], "--mapping"),
        (["run", "x.csv", "-m", "m.yaml", "--rate", "0"], "--rate"),
        (["run", "x.csv", "-m", "m.yaml", "--per", "0"], "--per"),
        (["run", "x.csv", "-m", "m.yaml", "--concurrency", "0"], "--concurrency"),
        (["run", "x.csv", "-m", "m.yaml", "--bogus"], "--bogus"),
        (["sandbox", "--port", "70000"], "--port"),
    ],
)
def test_bad_options_exit_2(args: list[str], needle: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert needle in result.output


def test_plain_http_to_a_remote_host_is_refused(tmp_path: Path) -> None:
    result = invoke(
        "run",
        ROOT / "sample_data/leads.csv",
        "-m",
        EXAMPLE_MAPPING,
        "--results",
        tmp_path / "r.csv",
        "--host",
        "http://api.leadsquared.com",
        env=KEYS_ENV,
    )
    assert_one_line_error(result, 2, "--host", "https")


def test_missing_keys_say_which_variable(tmp_path: Path) -> None:
    result = invoke(
        "run",
        ROOT / "sample_data/leads.csv",
        "-m",
        EXAMPLE_MAPPING,
        "--results",
        tmp_path / "r.csv",
        env={"LSQ_ACCESS_KEY": "", "LSQ_SECRET_KEY": ""},
    )
    assert_one_line_error(result, 2, "LSQ_ACCESS_KEY", "LSQ_SECRET_KEY")
    assert not (tmp_path / "r.csv").exists()


def test_missing_mapped_column_names_file_and_key(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text("first_name,emial\nA,a@example.com\n", encoding="utf-8")
    result = invoke(
        "run", source, "-m", EXAMPLE_MAPPING, "--sandbox", "--results", tmp_path / "r.csv"
    )
    assert_one_line_error(result, 2, "example.yaml", "email", "lead.attributes.EmailAddress")
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("kind", ["missing", "directory", "binary"])
def test_unreadable_input_file(tmp_path: Path, kind: str) -> None:
    source = tmp_path / "leads.csv"
    if kind == "directory":
        source.mkdir()
    elif kind == "binary":
        source.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\x00" * 50)
    result = invoke(
        "run", source, "-m", EXAMPLE_MAPPING, "--sandbox", "--results", tmp_path / "r.csv"
    )
    assert_one_line_error(result, 2, "leads.csv")


def test_mapping_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    mapping = tmp_path / "broken.yaml"
    mapping.write_text("lead:\n  search_by: EmailAddress\n  attributes: [unclosed\n")
    result = invoke(
        "run",
        ROOT / "sample_data/leads.csv",
        "-m",
        mapping,
        "--sandbox",
        "--results",
        tmp_path / "r.csv",
    )
    assert_one_line_error(result, 2, "broken.yaml", "line")


def test_mapping_schema_error_names_the_key(tmp_path: Path) -> None:
    mapping = tmp_path / "bad.yaml"
    mapping.write_text(EXAMPLE_MAPPING.read_text().replace("event: 105", "event: visit"))
    result = invoke(
        "run",
        ROOT / "sample_data/leads.csv",
        "-m",
        mapping,
        "--sandbox",
        "--results",
        tmp_path / "r.csv",
    )
    assert_one_line_error(result, 2, "bad.yaml", "activity.event")


def test_sandbox_run_succeeds_with_exit_0(tmp_path: Path, sample_rows) -> None:
    source = sample_rows(12)
    result = invoke(
        "run",
        source,
        "-m",
        EXAMPLE_MAPPING,
        "--sandbox",
        "--rate",
        "100",
        "--per",
        "1",
        "--results",
        tmp_path / "r.csv",
    )
    assert result.exit_code == 0, result.output
    assert "12 success" in result.output
    assert [line["status"] for line in read_results(tmp_path / "r.csv")] == ["success"] * 12


def test_invalid_row_gives_exit_1_and_goes_on(tmp_path: Path, sample_rows) -> None:
    source = sample_rows(5)
    lines = source.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    cells = lines[2].split(",")
    cells[header.index("visited_at")] = "31/02/2024 10:00"
    lines[2] = ",".join(cells)
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = invoke(
        "run",
        source,
        "-m",
        EXAMPLE_MAPPING,
        "--sandbox",
        "--rate",
        "100",
        "--per",
        "1",
        "--results",
        tmp_path / "r.csv",
    )
    assert result.exit_code == 1, result.output
    results = {line["row"]: line for line in read_results(tmp_path / "r.csv")}
    assert results["3"]["status"] == "invalid"
    assert "visited_at" in results["3"]["error_message"]
    assert [results[r]["status"] for r in ("2", "4", "5", "6")] == ["success"] * 4


def _run_probing_imports(
    args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``lsq-import ARGS`` in a child that prints, last, which heavy packages it imported
    (``HEAVY [...] <exit code>`` on stderr)."""
    probe = (
        "import sys\n"
        "from importer.cli import main\n"
        f"sys.argv = ['lsq-import', *{args!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'aiohttp', 'pydantic'})\n"
        "print('HEAVY', heavy, code, file=sys.stderr)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60,
        env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["run", "--help"], ["validate", "--help"], ["report", "--help"]],
)
def test_help_and_version_import_neither_aiohttp_nor_pydantic(args: list[str]) -> None:
    # Start-up cost: the runner pulls both in (~0.3 s); a command's --help needs neither.
    done = _run_probing_imports(args)
    assert "HEAVY [] 0" in done.stderr, done.stderr
    assert "lsq-import" in done.stdout


def test_the_library_names_stay_importable_from_the_package_and_the_cli() -> None:
    import importer
    import importer.cli
    from importer import ExitStatus, Summary, run_import
    from importer.runner import run_import as real
    from importer.summary import Summary as RealSummary

    assert run_import is real and importer.cli.run_import is real
    assert Summary is RealSummary and ExitStatus.SUCCESS == 0
    assert {"run_import", "Summary", "ExitStatus"} <= set(dir(importer))
    with pytest.raises(AttributeError):
        importer.no_such_name  # noqa: B018 - the attribute access is the test


def test_internal_error_is_one_line_with_code_70(monkeypatch, tmp_path: Path) -> None:
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("importer.cli.run_import", broken)
    result = invoke("run", "x.csv", "-m", "m.yaml")
    assert_one_line_error(result, 70, "internal error", "ZeroDivisionError")


def start_import_and_wait_for(results: Path, settled: int) -> subprocess.Popen[str]:
    """Start a sandbox import in a subprocess; return once ``settled`` rows are recorded."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "importer",
            "run",
            str(ROOT / "sample_data/leads.csv"),
            "-m",
            str(EXAMPLE_MAPPING),
            "--sandbox",
            "--rate",
            "10",
            "--per",
            "1",
            "--results",
            str(results),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # poll the journal, not a fixed sleep
        if results.exists() and results.read_text().count(",success,") >= settled:
            break
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_finishes_calls_in_flight_and_exits_4(tmp_path: Path, sig: signal.Signals) -> None:
    results = tmp_path / "r.csv"
    proc = start_import_and_wait_for(results, 5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 4, out + err
    assert "Traceback" not in err
    assert "stopped early (interrupted)" in out
    lines = read_results(results)
    assert 5 <= len(lines) < 200
    assert {line["status"] for line in lines} == {"success"}  # in-flight calls finished
    assert len({line["row"] for line in lines}) == len(lines)


def _importer(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "importer", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **KEYS_ENV},
    )


def assert_interrupted_before_sending(proc: subprocess.Popen[str]) -> None:
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 4, (proc.returncode, out, err)
    assert "Traceback" not in err
    assert out == ""
    assert err.strip().count("\n") == 0, err
    assert "interrupted before any row was sent" in err, err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and FIFOs")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_the_input_is_being_read_exits_4_with_one_line(
    tmp_path: Path, sig: signal.Signals
) -> None:
    # The input is a FIFO: the run is provably in its start-up, reading the input, once the
    # test's end of the FIFO opens (that open returns when the run has opened the other end).
    source = tmp_path / "leads.csv"
    os.mkfifo(source)
    results = tmp_path / "r.csv"
    proc = _importer(
        "run", str(source), "-m", str(EXAMPLE_MAPPING), "--sandbox", "--results", str(results)
    )
    with open(source, "wb"):
        proc.send_signal(sig)
        assert_interrupted_before_sending(proc)
    assert not results.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_during_the_preflight_exits_4_with_one_line_and_sends_no_row(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    import asyncio
    import threading

    sandbox = sandbox_thread(rate=100, per=1.0)
    # Every answer is held until the test releases it: the run waits in its first preflight
    # call, and the test sees that call arrive (sandbox.calls) before it sends the signal.
    release = threading.Event()
    dispatch = sandbox._dispatch

    async def held(*args, **kwargs):
        while not release.is_set():
            await asyncio.sleep(0.01)
        return await dispatch(*args, **kwargs)

    sandbox._dispatch = held  # type: ignore[method-assign]
    results = tmp_path / "r.csv"
    proc = _importer(
        "run",
        str(sample_rows(3)),
        "-m",
        str(EXAMPLE_MAPPING),
        "--host",
        sandbox.base_url,
        "--rate",
        "100",
        "--per",
        "1",
        "--results",
        str(results),
    )
    deadline = time.monotonic() + 30
    while not sandbox.calls and time.monotonic() < deadline:  # the observable condition
        time.sleep(0.02)
    assert sandbox.calls, "the preflight call never arrived"
    proc.send_signal(signal.SIGTERM)
    try:
        assert_interrupted_before_sending(proc)
    finally:
        release.set()
    assert sandbox.arrivals("CreateCustom") == []
    assert not results.exists()


def test_progress_bar_only_for_a_terminal() -> None:
    import io

    from importer.progress import wants_bar

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert wants_bar(quiet=False, stream=Tty()) is True
    assert wants_bar(quiet=True, stream=Tty()) is False
    assert wants_bar(quiet=False, stream=io.StringIO()) is False


def test_second_ctrl_c_stops_at_once_and_leaves_a_valid_journal(tmp_path: Path) -> None:
    results = tmp_path / "r.csv"
    proc = start_import_and_wait_for(results, 3)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 4, out + err
    assert "Traceback" not in err
    lines = read_results(results)
    assert 3 <= len(lines) < 200
    assert {line["status"] for line in lines} <= {"success", "unknown"}
    assert len({line["row"] for line in lines}) == len(lines)


def test_preflight_stops_a_mapping_the_account_cannot_take(tmp_path: Path, sample_rows) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(EXAMPLE_MAPPING.read_text().replace("event: 105", "event: 999"))
    result = invoke(
        "run", sample_rows(3), "-m", mapping, "--sandbox", "--results", tmp_path / "r.csv"
    )
    assert_one_line_error(result, 2, "m.yaml", "activity.event", "999")
    assert not (tmp_path / "r.csv").exists()
    skipped = invoke(
        "run",
        sample_rows(3),
        "-m",
        mapping,
        "--sandbox",
        "--no-preflight",
        "--results",
        tmp_path / "r.csv",
    )
    assert skipped.exit_code == 1, skipped.output  # every row failed at the API instead
    assert {line["status"] for line in read_results(tmp_path / "r.csv")} == {"failed"}


def test_standing_sandbox_serves_with_faults_until_ctrl_c() -> None:
    import json
    import socket
    import urllib.error
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LSQ_ACCESS_KEY": "", "LSQ_SECRET_KEY": ""}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "importer",
            "sandbox",
            "--port",
            str(port),
            "--rate",
            "100",
            "--per",
            "1",
            "--faults",
            "error_500_mx=1.0,seed=4",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        banner = proc.stderr.readline()
        assert f"http://127.0.0.1:{port}" in banner and "error_500_mx=1" in banner
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v2/ProspectActivity.svc/CreateCustom",
            data=json.dumps({"LeadDetails": [], "Activity": {"ActivityEvent": 105}}).encode(),
            headers={
                "Content-Type": "application/json",
                "x-LSQ-AccessKey": "sandbox-access-key",
                "x-LSQ-SecretKey": "sandbox-secret-key",
            },
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code in (400, 500)
        assert json.loads(info.value.read())["ExceptionType"].startswith("MX")
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_bad_fault_spec_is_one_line_exit_2() -> None:
    result = invoke("sandbox", "--faults", "drop_after=2")
    assert_one_line_error(result, 2, "--faults", "drop_after")


def test_retry_options_bound_attempts_and_delays(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    from importer.sandbox import FaultConfig

    sandbox = sandbox_thread(rate=100, per=1.0, faults=FaultConfig(error_500_plain=1.0, seed=1))
    result = invoke(
        "run",
        sample_rows(2),
        "-m",
        EXAMPLE_MAPPING,
        "--results",
        tmp_path / "r.csv",
        "--host",
        sandbox.base_url,
        "--max-attempts",
        "3",
        "--retry-delay",
        "0.01",
        "--retry-max-delay",
        "0.02",
        env=KEYS_ENV,
    )
    assert result.exit_code == 1, result.output
    lines = read_results(tmp_path / "r.csv")
    assert [(line["status"], line["attempts"]) for line in lines] == [("failed", "3")] * 2
    assert len(sandbox.arrivals("CreateCustom")) == 6


def test_a_rerun_of_a_finished_file_imports_neither_aiohttp_nor_pydantic(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    """The nightly job's usual case: the file already went in. It used to pay ~1 s of imports
    (aiohttp, the mapping's pydantic) to find nothing to send."""
    from .conftest import SANDBOX_KEYS, import_into

    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(5), tmp_path / "r.csv"
    assert import_into(sandbox, source, results).exit_status == 0
    args = ["run", str(source), "-m", str(EXAMPLE_MAPPING), "--results", str(results)]
    args += ["--host", sandbox.base_url, "--quiet"]
    env = {
        **os.environ,
        "LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key,
        "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key,
    }
    done = _run_probing_imports(args, env)
    assert "HEAVY [] 0" in done.stderr, done.stdout + done.stderr
    assert "5 rows already succeeded earlier: not sent again" in done.stdout
    assert len(sandbox.activities) == 5


def _run_with_env_file(tmp_path: Path, env_file: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "importer",
            "run",
            str(ROOT / "sample_data/leads.csv"),
            "-m",
            str(EXAMPLE_MAPPING),
            "--results",
            str(tmp_path / "r.csv"),
            "--env-file",
            str(env_file),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LSQ_ACCESS_KEY": "", "LSQ_SECRET_KEY": ""},
    )


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("LSQ_ACCESS_KEY=u$rAccessKey0123\nLSQ_PASSWORD=x\n", "unknown setting 'LSQ_PASSWORD'"),
        ("LSQ_ACCESS_KEY=u$rAccessKey0123\nLSQ_SECRET_KEY\n", "line 2: expected NAME=value"),
        ("LSQ_ACCESS_KEY=u$rAccessKey0123\n", "LSQ_SECRET_KEY not set"),
        (
            "LSQ_ACCESS_KEY=u$rAccessKey0123\nLSQ_SECRET_KEY=Secret\x1bKey0123\n",
            "LSQ_SECRET_KEY contains a control",
        ),
        (
            "LSQ_ACCESS_KEY=u$rAccessKey0123\nLSQ_SECRET_KEY=SecretKey0123456\n"
            "LSQ_HOST=http://example.com\n",
            "plain http",
        ),
    ],
    ids=["unknown setting", "bad line", "missing key", "bad key", "bad host"],
)
def test_a_refused_env_file_readable_by_others_is_one_line_naming_both_problems(
    tmp_path: Path, content: str, needle: str
) -> None:
    env_file = tmp_path / "lsq.env"
    env_file.write_text(content)
    env_file.chmod(0o644)
    done = _run_with_env_file(tmp_path, env_file)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines  # the refusal, not a warning first
    assert lines[0].startswith("Error: ") and needle in lines[0], lines
    assert f"chmod 600 {env_file}" in lines[0], lines
    assert not (tmp_path / "r.csv").exists()


def test_an_env_file_readable_by_others_that_is_used_warns_once(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    env_file = tmp_path / "lsq.env"
    env_file.write_text(
        f"LSQ_ACCESS_KEY={SANDBOX_KEYS.access_key}\nLSQ_SECRET_KEY={SANDBOX_KEYS.secret_key}\n"
        f"LSQ_HOST={sandbox.base_url}\n"
    )
    env_file.chmod(0o644)
    done = subprocess.run(
        [
            sys.executable, "-m", "importer", "run", str(sample_rows(2)),
            "-m", str(EXAMPLE_MAPPING), "--results", str(tmp_path / "r.csv"),
            "--env-file", str(env_file), "--rate", "100", "--per", "1",
        ],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LSQ_ACCESS_KEY": "", "LSQ_SECRET_KEY": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"lsq-import: WARNING: {env_file} is readable by other users and holds your API keys: "
        f"chmod 600 {env_file}"
    ]
    assert SANDBOX_KEYS.secret_key not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("option", "target"),
    [
        ("--summary-json", "leads.csv"),
        ("--summary-json", "map.yaml"),
        ("--summary-json", "leads.results.csv"),
        ("--log-file", "leads.csv"),
        ("--log-file", "leads.results.csv.meta.json"),
    ],
)
def test_an_output_option_naming_a_file_the_run_reads_or_keeps_is_refused(
    tmp_path: Path, sample_rows, monkeypatch: pytest.MonkeyPatch, option: str, target: str
) -> None:
    """``--summary-json leads.csv`` overwrote the input with JSON, ``--log-file`` appended log
    lines to it as data rows, ``--summary-json RESULTS`` replaced the results file."""
    import shutil

    monkeypatch.chdir(tmp_path)
    source = sample_rows(3)
    shutil.copy(EXAMPLE_MAPPING, tmp_path / "map.yaml")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    result = CliRunner().invoke(
        cli, ["run", str(source), "-m", "map.yaml", "--sandbox", "-q", option, target]
    )
    assert result.exit_code == 2, result.output
    assert f"{option} {target}: names " in result.output and "reads or keeps" in result.output
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_report_refuses_to_write_its_html_over_the_results_file(tmp_path: Path) -> None:
    results = tmp_path / "r.csv"
    results.write_text("row,key\n")
    result = CliRunner().invoke(cli, ["report", str(results), "--html", str(results)])
    assert result.exit_code == 2, result.output
    assert results.read_text() == "row,key\n"


def test_a_ctrl_c_while_the_options_are_read_is_one_line_and_exit_4(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """click turned it into "Aborted!" and exit 1, which the README says means rows failed."""
    import click

    import importer.cli as cli_module

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(click.Path, "convert", interrupted)
    monkeypatch.setattr(cli_module.signal, "signal", lambda *args: None)  # keep pytest's
    monkeypatch.setattr(sys, "argv", ["lsq-import", "report", "r.csv"])
    with pytest.raises(SystemExit) as exited:
        cli_module.main()
    assert exited.value.code == 4
    assert capsys.readouterr().err.strip() == "Error: interrupted before anything was sent"
