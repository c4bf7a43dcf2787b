"""``run --dry-run``: the bodies a run would send, checked as ``validate`` checks them, and
nothing sent, no results file written."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from importer.cli import cli
from importer.dryrun import dry_run
from importer.exitcodes import ExitStatus
from importer.leadsquared.client import (
    ACTIVITY_SETTING_PATH,
    ACTIVITY_TYPES_PATH,
    CREATE_PATH,
    LEAD_METADATA_PATH,
)
from importer.results.fingerprint import meta_path
from importer.results.lock import ResultsLock, lock_path
from importer.sandbox import Sandbox

from .conftest import EXAMPLE_MAPPING, ROOT, SAMPLE_CSV, SANDBOX_KEYS

KEYS = {"LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key, "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key}
SCALED = ("--rate", "100", "--per", "1")


def invoke(*args: object, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env={**KEYS, **(env or {})})


def bodies_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def received(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Record the body of every CreateCustom call the sandbox gets, as it parsed it."""
    bodies: list[dict[str, Any]] = []
    account = sandbox.account
    parse = account.parse_create

    def recording(content_type: str, body: bytes) -> Any:
        bodies.append(json.loads(body))
        return parse(content_type, body)

    account.parse_create = recording  # type: ignore[method-assign]
    return bodies


def with_bad_rows(path: Path, bad: dict[int, str]) -> Path:
    """The sample's first 8 rows, with ``bad`` (row number -> column) emptied or broken."""
    with open(SAMPLE_CSV, newline="", encoding="utf-8-sig") as handle:
        records = list(csv.reader(handle))[:9]
    header = records[0]
    for number, column in bad.items():
        records[number - 1][header.index(column)] = (
            "31/02/2024 10:00" if column == "visited_at" else ""
        )
    with open(path, "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(records)
    return path


def beside(results: Path) -> list[Path]:
    """The results file, its metadata and its lock."""
    return [results, meta_path(results), lock_path(results)]


def test_dry_run_limit_3_makes_no_call_and_prints_what_run_sends(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    source = sample_rows(10)
    results = tmp_path / "leads.results.csv"
    sandbox = sandbox_thread(rate=100, per=1.0)
    host = ("--host", sandbox.base_url)

    dry = invoke("run", source, "-m", EXAMPLE_MAPPING, "--results", results, *host, "--dry-run",
                 "--limit", "3")  # fmt: skip

    assert dry.exit_code == 0, dry.output
    assert sandbox.calls == []  # not even the preflight's metadata calls
    assert not any(path.exists() for path in beside(results)), list(tmp_path.iterdir())
    printed = bodies_of(dry.stdout)
    assert [line["row"] for line in printed] == [2, 3, 4]
    assert "3 rows checked" in dry.stderr and "3 valid, 0 invalid" in dry.stderr

    sent = received(sandbox)
    real = invoke("run", source, "-m", EXAMPLE_MAPPING, "--results", results, *host, *SCALED,
                  "--limit", "3")  # fmt: skip

    assert real.exit_code == 0, real.output
    assert sorted(map(json.dumps, sent)) == sorted(json.dumps(line["body"]) for line in printed)
    assert len(sent) == 3


def test_limit_counts_invalid_rows_as_run_does(tmp_path: Path, sandbox_thread) -> None:
    # run --limit 3 takes rows 2, 3 and 4, and row 3 is invalid: it sends rows 2 and 4.
    source = with_bad_rows(tmp_path / "leads.csv", {3: "email"})
    results = tmp_path / "leads.results.csv"
    sandbox = sandbox_thread(rate=100, per=1.0)
    host = ("--host", sandbox.base_url)

    dry = invoke("run", source, "-m", EXAMPLE_MAPPING, "-r", results, *host, "--dry-run",
                 "--limit", "3")  # fmt: skip
    sent = received(sandbox)
    real = invoke("run", source, "-m", EXAMPLE_MAPPING, "-r", results, *host, *SCALED,
                  "--no-preflight", "--limit", "3")  # fmt: skip

    assert dry.exit_code == real.exit_code == ExitStatus.ROWS_FAILED, (dry.output, real.output)
    printed = bodies_of(dry.stdout)
    assert [line["row"] for line in printed] == [2, 4]
    assert sorted(map(json.dumps, sent)) == sorted(json.dumps(line["body"]) for line in printed)
    assert "row 3: column 'email'" in dry.stderr


def test_invalid_rows_give_validates_summary_and_exit_code(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    source = with_bad_rows(tmp_path / "leads.csv", {3: "email", 6: "visited_at"})

    dry = invoke("run", source, "-m", EXAMPLE_MAPPING, "--dry-run")
    checked = invoke("validate", source, "-m", EXAMPLE_MAPPING, "--payloads", "-")

    assert dry.exit_code == checked.exit_code == ExitStatus.ROWS_FAILED
    assert dry.stdout == checked.stdout  # the same bodies, line for line
    assert len(bodies_of(dry.stdout)) == 6
    counts = "8 rows checked"
    assert counts in dry.stderr and "6 valid, 2 invalid" in dry.stderr
    # The same lines but for the time each took.
    same = [line for line in dry.stderr.splitlines() if counts not in line]
    assert same == [line for line in checked.stderr.splitlines() if counts not in line]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["leads.csv"]  # no results file


def test_payloads_file_and_json_summary(tmp_path: Path) -> None:
    source = with_bad_rows(tmp_path / "leads.csv", {4: "email"})
    payloads, summary = tmp_path / "bodies.jsonl", tmp_path / "summary.json"

    dry = invoke("run", source, "-m", EXAMPLE_MAPPING, "--dry-run", "--payloads", payloads,
                 "--json", summary, "--start-row", "3", "--limit", "4")  # fmt: skip

    assert dry.exit_code == ExitStatus.ROWS_FAILED, dry.output
    assert [line["row"] for line in bodies_of(payloads.read_text(encoding="utf-8"))] == [3, 5, 6]
    assert "4 rows checked" in dry.stdout and dry.stderr == ""  # the summary on stdout
    found = json.loads(summary.read_text(encoding="utf-8"))
    assert (found["rows"], found["valid"], found["invalid"], found["exit_status"]) == (4, 3, 1, 1)


def test_dry_run_of_a_resume_leaves_out_the_done_rows_and_writes_nothing(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    source = sample_rows(10)
    results = tmp_path / "leads.results.csv"
    sandbox = sandbox_thread(rate=100, per=1.0)
    host = ("--host", sandbox.base_url)
    trial = invoke("run", source, "-m", EXAMPLE_MAPPING, "-r", results, *host, *SCALED,
                   "--limit", "3")  # fmt: skip
    assert trial.exit_code == 0, trial.output
    kept = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in beside(results)[:2]}
    calls = len(sandbox.calls)

    with ResultsLock(results):  # held, as by a run: a dry run takes no lock, so it still works
        dry = invoke("run", source, "-m", EXAMPLE_MAPPING, "-r", results, *host, "--dry-run",
                     "--limit", "2")  # fmt: skip

    assert dry.exit_code == 0, dry.output
    assert [line["row"] for line in bodies_of(dry.stdout)] == [5, 6]
    assert f"3 rows already success in {results}" in dry.stderr
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in kept} == kept
    assert len(sandbox.calls) == calls

    sent = received(sandbox)
    rest = invoke("run", source, "-m", EXAMPLE_MAPPING, "-r", results, *host, *SCALED,
                  "--no-preflight", "--limit", "2")  # fmt: skip
    assert rest.exit_code == 0, rest.output
    assert sorted(map(json.dumps, sent)) == sorted(
        json.dumps(line["body"]) for line in bodies_of(dry.stdout)
    )


def test_dry_run_refuses_a_resume_the_run_would_refuse(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    source = sample_rows(6)
    results = tmp_path / "leads.results.csv"
    sandbox = sandbox_thread(rate=100, per=1.0)
    first = invoke("run", source, "-m", EXAMPLE_MAPPING, "-r", results, "--host", sandbox.base_url,
                   *SCALED, "--limit", "2")  # fmt: skip
    assert first.exit_code == 0, first.output
    mapping = tmp_path / "mapping.yaml"
    text = EXAMPLE_MAPPING.read_text(encoding="utf-8")
    mapping.write_text(text + "\n# a comment: the mapping means the same\n", encoding="utf-8")
    meta = beside(results)[1].read_bytes()
    args = ("run", source, "-m", mapping, "-r", results, "--host", sandbox.base_url)

    same = invoke(*args, "--dry-run")  # as a resume, which goes on
    assert same.exit_code == 0, same.output
    assert [line["row"] for line in bodies_of(same.stdout)] == [4, 5, 6, 7]

    edited = text.replace('"Visited {city}. {notes}"', '"Seen in {city}. {notes}"')
    mapping.write_text(edited, encoding="utf-8")
    dry = invoke(*args, "--dry-run")
    real = invoke(*args)

    assert dry.exit_code == real.exit_code == ExitStatus.BAD_INPUT, (dry.output, real.output)
    assert dry.stderr == real.stderr and "changed since" in dry.stderr
    assert beside(results)[1].read_bytes() == meta
    forced = invoke(*args, "--dry-run", "--force-resume")
    assert forced.exit_code == 0, forced.output
    assert [line["row"] for line in bodies_of(forced.stdout)] == [4, 5, 6, 7]


def test_dry_run_online_makes_only_metadata_calls(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    source = sample_rows(5)
    sandbox = sandbox_thread(rate=100, per=1.0)

    dry = invoke("run", source, "-m", EXAMPLE_MAPPING, "--host", sandbox.base_url, "--dry-run",
                 "--online", "--results", tmp_path / "r.csv")  # fmt: skip

    assert dry.exit_code == 0, dry.output
    assert len(bodies_of(dry.stdout)) == 5
    paths = {call.path for call in sandbox.calls}
    assert paths == {ACTIVITY_TYPES_PATH, ACTIVITY_SETTING_PATH, LEAD_METADATA_PATH}, paths
    assert "activity 105 (Website Purchase) exists" in dry.stderr
    assert f"({len(sandbox.calls)} metadata calls)" in dry.stderr
    assert not (tmp_path / "r.csv").exists()


def test_dry_run_online_finds_what_the_preflight_refuses(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    source = sample_rows(3)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        EXAMPLE_MAPPING.read_text(encoding="utf-8").replace("event: 105", "event: 999")
    )
    sandbox = sandbox_thread(rate=100, per=1.0)
    args = ("run", source, "-m", mapping, "--host", sandbox.base_url, "-r", tmp_path / "r.csv")

    dry = invoke(*args, "--dry-run", "--online")
    checked = invoke("validate", source, "-m", mapping, "--online", "--host", sandbox.base_url)

    assert "event: 999" in mapping.read_text()
    assert dry.exit_code == checked.exit_code == ExitStatus.BAD_INPUT, dry.output
    assert dry.stdout == "" and dry.stderr == checked.stderr
    assert CREATE_PATH not in [call.path for call in sandbox.calls]


def test_dry_run_imports_no_http_client(tmp_path: Path, sample_rows) -> None:
    # Without --online no call can be made: the HTTP client is not even imported.
    source = sample_rows(3)
    probe = (
        "import sys\n"
        "from importer.cli import main\n"
        f"sys.argv = ['lsq-import', 'run', {str(source)!r}, '-m', {str(EXAMPLE_MAPPING)!r},"
        " '--dry-run', '--host', 'api-in21.leadsquared.com']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    print('EXIT', exc.code, 'aiohttp' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60,
        env={"PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert "EXIT 0 False" in done.stderr, done.stderr
    assert len(bodies_of(done.stdout)) == 3
    assert list(tmp_path.glob("*.results.csv*")) == []


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--payloads", "p.jsonl"], "--payloads: applies only with --dry-run"),
        (["--online"], "--online: applies only with --dry-run"),
        (["--dry-run", "--json", "-"], "--json - cannot"),
        (["--dry-run", "--payloads", "-", "--json"], "--json - cannot"),
        (["--dry-run", "--results-dir", "."], "--dry-run: takes one input file"),
        (["--dry-run", "--payloads", "leads.csv"], "--payloads leads.csv: names leads.csv"),
        (["--dry-run", "--payloads", "no/such/dir/p.jsonl"], "does not exist"),
    ],
)
def test_bad_dry_run_options_exit_2(tmp_path: Path, monkeypatch, extra: list[str], needle: str):
    monkeypatch.chdir(tmp_path)
    with_bad_rows(tmp_path / "leads.csv", {})

    outcome = invoke("run", "leads.csv", "-m", EXAMPLE_MAPPING, *extra)

    assert outcome.exit_code == ExitStatus.BAD_INPUT, outcome.output
    assert needle in outcome.stderr and outcome.stdout == ""
    assert sorted(path.name for path in tmp_path.iterdir()) == ["leads.csv"]


def test_dry_run_from_python(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # where the default results file would be
    source = with_bad_rows(tmp_path / "leads.csv", {2: "email"})
    out = io.StringIO()

    summary = dry_run(source, EXAMPLE_MAPPING, limit=3, payloads=out)

    assert summary.exit_status is ExitStatus.ROWS_FAILED
    assert (summary.rows, summary.valid, summary.invalid) == (3, 2, 1)
    assert [line["row"] for line in bodies_of(out.getvalue())] == [3, 4]
    assert list(tmp_path.iterdir()) == [source]


def test_a_step_added_to_the_body_reaches_the_dry_run_and_the_run_alike(
    tmp_path: Path, sample_rows, sandbox_thread, monkeypatch
) -> None:
    # What a later change adds to every body (a row token) goes into request_builder: both
    # the bodies a run sends and those a dry run prints come from it.
    import importer.outgoing

    plain = importer.outgoing.request_builder

    def with_a_mark(mapping: Any, token_seed: str = "") -> Any:
        build = plain(mapping, token_seed)

        def marked(row: Any) -> Any:
            payload = build(row)
            payload.body["Activity"]["ActivityNote"] += f" #{row.number}"
            return payload

        return marked

    monkeypatch.setattr(importer.outgoing, "request_builder", with_a_mark)
    source = sample_rows(4)
    sandbox = sandbox_thread(rate=100, per=1.0)
    args = (
        "run",
        source,
        "-m",
        EXAMPLE_MAPPING,
        "-r",
        tmp_path / "r.csv",
        "--host",
        sandbox.base_url,
    )

    dry = invoke(*args, "--dry-run")
    sent = received(sandbox)
    real = invoke(*args, *SCALED)

    assert dry.exit_code == real.exit_code == 0, (dry.output, real.output)
    printed = [line["body"] for line in bodies_of(dry.stdout)]
    assert [body["Activity"]["ActivityNote"][-3:] for body in printed] == [
        " #2",
        " #3",
        " #4",
        " #5",
    ]
    assert sorted(map(json.dumps, sent)) == sorted(map(json.dumps, printed))
