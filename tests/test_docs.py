"""The commands in README.md and docs/ are real: each parses, and the playbook runs."""

from __future__ import annotations

import re
import shlex

import click
import pytest
from click.testing import CliRunner

from importer.cli import cli

from .conftest import EXAMPLE_MAPPING, ROOT, SANDBOX_KEYS, read_results

DOCS = [
    ROOT / "README.md",
    ROOT / "docs" / "scheduling.md",
    ROOT / "docs" / "migration-playbook.md",
]
_COMMAND = re.compile(r"(?:^|ExecStart=|\s)(?:\S*/)?lsq-import ([^\s|].*)$")
# Where the shell takes over from lsq-import's arguments: || alert, | jq, < file, > file.
_SHELL = re.compile(r"\s+(?:\|\|?|[<>])\s")


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        in_block = False
        for line in doc.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                in_block = not in_block
                continue
            if not in_block or line.lstrip().startswith("#"):
                continue
            match = _COMMAND.search(line)
            if match:
                text = _SHELL.split(match.group(1).split("  #")[0])[0].strip()
                found.append((doc.name, text))
    return found


COMMANDS = documented_commands()


def test_the_docs_have_commands() -> None:
    names = {shlex.split(text)[0] for _, text in COMMANDS}
    assert {"run", "validate", "init-mapping", "report", "sandbox", "status"} <= names


@pytest.mark.parametrize(("doc", "text"), COMMANDS, ids=[f"{d}:{t[:40]}" for d, t in COMMANDS])
def test_documented_command_parses(doc: str, text: str) -> None:
    args = shlex.split(text)
    command = cli.get_command(click.Context(cli), args[0])
    assert command is not None, f"{doc}: unknown command {args[0]!r}"
    # Parsing checks every option name, value type and required argument, without running.
    command.make_context(args[0], args[1:])


def test_migration_playbook_end_to_end(tmp_path, sample_rows, sandbox_thread, monkeypatch):
    """Steps 2 to 11 of docs/migration-playbook.md, against a sandbox standing in for the
    account (the real-account steps get --host with the sandbox's address)."""
    monkeypatch.chdir(tmp_path)
    sample_rows(40, "migration.csv")
    (tmp_path / "mapping.yaml").write_text(EXAMPLE_MAPPING.read_text())
    sandbox = sandbox_thread(rate=100, per=1.0)
    env = {
        "LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key,
        "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key,
        "LSQ_HOST": sandbox.base_url,
    }
    playbook = (ROOT / "docs" / "migration-playbook.md").read_text(encoding="utf-8")
    steps = [
        text
        for doc, text in COMMANDS
        if doc == "migration-playbook.md" and not text.startswith("init-mapping")
    ]
    assert steps[0].startswith("validate") and "run migration.csv" in playbook
    runner = CliRunner()
    codes = []
    for text in steps:
        args = shlex.split(text)
        if args[0] == "run" and "--sandbox" not in args:
            args += ["--rate", "100", "--per", "1"]
        result = runner.invoke(cli, args, env=env)
        codes.append((text, result.exit_code))
        assert result.exit_code == 0, (text, result.output)
    lines = read_results(tmp_path / "migration.results.csv")
    assert len(lines) == 40 and {line["status"] for line in lines} == {"success"}
    assert len(sandbox.activities) == 40  # the trial's 20 rows were not sent twice
    assert (tmp_path / "migration-report.html").exists()
    assert (tmp_path / "payloads.jsonl").read_text().count("\n") == 40
    assert (tmp_path / "dry-run.jsonl").read_text().count("\n") == 40
