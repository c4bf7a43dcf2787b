"""The API boundary against a hostile or broken server, end to end over loopback sockets.

Each test runs real imports (``importer.run_import`` or the CLI) against the sandbox at
scaled limits (100 calls per 1 s) with one of the faults that rehearse an attack or a broken
proxy, and checks what the user gets: the exit code, the one-line message, the row statuses,
and what landed in the sandbox (no duplicate activity, no key sent where it must not go, no
key in any output).
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from importer.cli import cli

from .conftest import EXAMPLE_MAPPING


def run_cli(*args: object, env: dict[str, str]) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def run_args(source: Path, results: Path, host: str, *extra: object) -> list[object]:
    """``lsq-import run`` at the scaled limits of these tests."""
    return [
        "run",
        source,
        "-m",
        EXAMPLE_MAPPING,
        "--results",
        results,
        "--host",
        host,
        "--rate",
        "100",
        "--per",
        "1",
        *extra,
    ]


# --------------------------------------------------------------------------------------------
# 3. A key with a CR or LF


def test_a_key_with_a_line_break_is_a_one_line_config_error(
    sandbox_thread, sample_rows, tmp_path
) -> None:
    """Before: aiohttp's header-injection ValueError mid-run, exit 70. Now: exit 2, one line
    naming the variable, nothing sent, the key not printed."""
    sandbox = sandbox_thread(rate=100, per=1.0)
    secret = "sandbox-secret-key\r\nX-Injected: 1"
    outcome = run_cli(
        *run_args(sample_rows(3), tmp_path / "r.csv", sandbox.base_url),
        env={"LSQ_ACCESS_KEY": "sandbox-access-key", "LSQ_SECRET_KEY": secret},
    )
    assert outcome.exit_code == 2, outcome.output
    message = outcome.stderr.strip()
    assert message.count("\n") == 0 and "LSQ_SECRET_KEY" in message, message
    assert "line break" in message and "X-Injected" not in outcome.output
    assert sandbox.calls == []
