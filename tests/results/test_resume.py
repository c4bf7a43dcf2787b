"""Resume safety: one run per results file, fingerprints of input and mapping, settings files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from importer.cli import cli
from importer.exceptions import ConfigError, ResultsFileError
from importer.mapping import load_mapping
from importer.mapping.meaning import MAX_KEYS
from importer.results.fingerprint import changed_keys
from importer.results.lock import ResultsLock
from importer.settings import read_env_file

from ..conftest import EXAMPLE_MAPPING, ROOT, SANDBOX_KEYS, import_into, read_results


def test_second_run_on_the_same_results_file_is_refused(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    results = tmp_path / "r.csv"
    with ResultsLock(results), pytest.raises(ResultsFileError, match="in use by another"):
        import_into(sandbox, sample_rows(3), results)
    assert len(sandbox.calls) == 0
    assert not results.exists()


def test_lock_of_a_killed_run_is_taken_over(tmp_path: Path) -> None:
    results = tmp_path / "r.csv"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            "from importer.results.lock import ResultsLock;"
            f"lock = ResultsLock(Path({str(results)!r})); lock.acquire();"
            "print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(ResultsFileError, match=f"pid {holder.pid}"):
        ResultsLock(results).acquire()
    holder.kill()
    holder.wait()
    lock = ResultsLock(results)
    lock.acquire()
    assert lock.took_over_from == holder.pid
    lock.release()


def test_resume_with_another_input_is_refused_unless_forced(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    results = tmp_path / "r.csv"
    source = sample_rows(5)
    import_into(sandbox, source, results)
    lines = source.read_text(encoding="utf-8").splitlines()
    source.write_text(
        "\n".join([lines[0], lines[3], *lines[1:3], *lines[4:]]) + "\n", encoding="utf-8"
    )  # rows moved: numbers no longer match
    with pytest.raises(ResultsFileError, match="--force-resume"):
        import_into(sandbox, source, results)
    assert len(sandbox.activities) == 5
    summary = import_into(sandbox, source, results, force_resume=True)
    assert summary.calls == 0
    # The forced run recorded the new fingerprints: a plain resume is accepted again.
    assert import_into(sandbox, source, results).calls == 0


def run_cli(sandbox, source: Path, mapping: Path, results: Path, *extra: str):
    return CliRunner().invoke(
        cli,
        ["run", str(source), "-m", str(mapping), "--results", str(results)]
        + ["--host", sandbox.base_url, "--rate", "100", "--per", "1", "--quiet", *extra],
        env={"LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key, "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key},
    )


def started_with_two_of_four(tmp_path: Path, sample_rows, sandbox) -> tuple[Path, Path, Path]:
    """A results file that a trial run (--limit 2) started: two rows sent, two to go."""
    source, results = sample_rows(4), tmp_path / "r.csv"
    mapping = tmp_path / "m.yaml"
    mapping.write_text(EXAMPLE_MAPPING.read_text(encoding="utf-8"), encoding="utf-8")
    first = run_cli(sandbox, source, mapping, results, "--limit", "2")
    assert first.exit_code == 0, first.output
    assert len(sandbox.activities) == 2
    return source, mapping, results


def test_resume_after_an_edit_that_changes_nothing_sent(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    """A comment, the shorthand written out, keys reordered, a default written explicitly:
    the mapping means the same, so the resume goes on without --force-resume."""
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, mapping, results = started_with_two_of_four(tmp_path, sample_rows, sandbox)
    text = mapping.read_text(encoding="utf-8")
    edited = "# reviewed by ops\n" + text.replace(
        "    FirstName: first_name\n    LastName: last_name\n",
        "    LastName: {column: last_name, required: false}  # moved up\n"
        "    FirstName:\n      column: first_name\n",
    )
    assert edited != text
    mapping.write_text(edited, encoding="utf-8")

    again = run_cli(sandbox, source, mapping, results)

    assert again.exit_code == 0, again.output
    assert len(sandbox.activities) == 4
    assert [row["status"] for row in read_results(results)] == ["success"] * 4
    meta = json.loads((tmp_path / "r.csv.meta.json").read_text())
    assert meta["mapping_digest"] == f"sha256:{hashlib.sha256(edited.encode()).hexdigest()}"
    assert meta["complete"] is True
    # Complete, under the edited bytes: a rerun sends nothing and is answered from the counts.
    assert run_cli(sandbox, source, mapping, results).exit_code == 0
    assert len(sandbox.activities) == 4


def test_resume_with_a_changed_mapping_is_refused_naming_the_keys(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, mapping, results = started_with_two_of_four(tmp_path, sample_rows, sandbox)
    text = mapping.read_text(encoding="utf-8")
    mapping.write_text(
        text.replace("    mx_City: city\n", "    mx_City: {column: city, transform: upper}\n")
        .replace("    mx_Custom_2: product\n", "")
        .replace("Visited {city}.", "Came to {city}."),
        encoding="utf-8",
    )

    refused = run_cli(sandbox, source, mapping, results)

    assert refused.exit_code == 2, refused.output
    assert (
        f"{mapping} changed since {results} was started in what it sends (activity.fields."
        "mx_Custom_2 removed, activity.note.template changed, lead.attributes.mx_City changed); "
        "use --force-resume"
    ) in refused.stderr
    assert len(sandbox.activities) == 2
    forced = run_cli(sandbox, source, mapping, results, "--force-resume")
    assert forced.exit_code == 0, forced.output
    assert len(sandbox.activities) == 4
    meta = json.loads((tmp_path / "r.csv.meta.json").read_text())
    assert meta["mapping_digest"].startswith("sha256:")
    assert meta["mapping_meaning"].startswith("sha256:")
    assert "lead.attributes.mx_City" in meta["mapping_keys"]


def test_a_results_file_recorded_with_only_the_mapping_bytes_resumes_on_those(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    """Metadata written before meanings were recorded: the same bytes still resume; other
    bytes cannot be told apart from another meaning, so they need --force-resume."""
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, mapping, results = started_with_two_of_four(tmp_path, sample_rows, sandbox)
    meta_file = tmp_path / "r.csv.meta.json"
    meta = json.loads(meta_file.read_text())
    del meta["mapping_meaning"], meta["mapping_keys"]
    meta_file.write_text(json.dumps(meta))
    original = mapping.read_text(encoding="utf-8")

    mapping.write_text(original + "# edited\n", encoding="utf-8")
    refused = run_cli(sandbox, source, mapping, results)
    assert refused.exit_code == 2, refused.output
    assert f"{mapping} changed since {results} was started; use --force-resume" in refused.stderr

    mapping.write_text(original, encoding="utf-8")
    again = run_cli(sandbox, source, mapping, results)
    assert again.exit_code == 0, again.output
    assert len(sandbox.activities) == 4
    assert json.loads(meta_file.read_text())["mapping_meaning"].startswith("sha256:")


def test_changed_keys_are_bounded() -> None:
    recorded = {f"lead.attributes.a{i:02d}": "x" for i in range(30)}
    current = {key: "y" for key in recorded}
    named = changed_keys(recorded, current)
    assert named.startswith("lead.attributes.a00 changed, lead.attributes.a01 changed")
    assert named.endswith("lead.attributes.a09 changed, and 20 more")


def test_a_large_mapping_records_coarser_keys(tmp_path) -> None:
    attributes = "".join(f"    mx_F{i}: c{i}\n" for i in range(MAX_KEYS + 5))
    path = tmp_path / "big.yaml"
    path.write_text(
        "version: 1\nlead:\n  search_by: mx_F0\n  attributes:\n"
        f"{attributes}activity: {{event: 105}}\n",
        encoding="utf-8",
    )
    keys = load_mapping(path).meaning.keys
    assert len(keys) <= MAX_KEYS and "lead.attributes" in keys


def test_env_file_supplies_keys_and_host(tmp_path, sample_rows, sandbox_thread) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    env_file = tmp_path / "lsq.env"
    env_file.write_text(
        "# keys for the nightly import\n"
        f"export LSQ_ACCESS_KEY='{SANDBOX_KEYS.access_key}'\n"
        f'LSQ_SECRET_KEY="{SANDBOX_KEYS.secret_key}"\n'
        f"LSQ_HOST={sandbox.base_url}\n"
    )
    env_file.chmod(0o600)
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(sample_rows(3)),
            "-m",
            str(EXAMPLE_MAPPING),
            "--results",
            str(tmp_path / "r.csv"),
            "--env-file",
            str(env_file),
            "--rate",
            "100",
            "--per",
            "1",
        ],
        env={"LSQ_ACCESS_KEY": "", "LSQ_SECRET_KEY": "", "LSQ_HOST": ""},
    )
    assert result.exit_code == 0, result.output
    assert "readable by other users" not in result.output
    assert [r["status"] for r in read_results(tmp_path / "r.csv")] == ["success"] * 3


def test_env_file_readable_by_others_warns(tmp_path: Path, caplog) -> None:
    env_file = tmp_path / "lsq.env"
    env_file.write_text("LSQ_ACCESS_KEY=u$rAAAA1111\nLSQ_SECRET_KEY=BBBB2222\n")
    env_file.chmod(0o644)
    assert read_env_file(env_file) == {
        "LSQ_ACCESS_KEY": "u$rAAAA1111",
        "LSQ_SECRET_KEY": "BBBB2222",
    }
    assert "readable by other users" in caplog.text
    assert "AAAA1111" not in caplog.text and "BBBB2222" not in caplog.text


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("LSQ_ACCESS_KEY\n", "line 1: expected NAME=value"),
        ("LSQ_PASSWORD=x\n", "unknown setting 'LSQ_PASSWORD'"),
    ],
)
def test_bad_env_file(tmp_path: Path, content: str, needle: str) -> None:
    env_file = tmp_path / "lsq.env"
    env_file.write_text(content)
    with pytest.raises(ConfigError, match=needle):
        read_env_file(env_file)


def test_a_resume_reads_on_from_near_its_first_row_left_and_counts_those_before(
    tmp_path: Path, sample_rows, sandbox_thread, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importer.reader import delimited

    monkeypatch.setattr(delimited, "_FIRST_POSITION_EVERY", 4)
    sandbox = sandbox_thread(rate=100, per=1.0)
    source = sample_rows(40)  # rows 2 to 41
    results = tmp_path / "r.csv"
    import_into(sandbox, source, results, limit=30)  # rows 2 to 31
    meta = json.loads((tmp_path / "r.csv.meta.json").read_text())
    assert meta["positions"]
    assert meta["open_from"][0] == 32  # the resume reads the outcomes from row 32's line
    starts = []
    real = delimited._CsvInput._iter_rows_from

    def spy(self, start):  # type: ignore[no-untyped-def]
        starts.append(start)
        return real(self, start)

    monkeypatch.setattr(delimited._CsvInput, "_iter_rows_from", spy)
    summary = import_into(sandbox, source, results)
    # It started at the last record start noted at or before row 32, the first row left.
    assert len(starts) == 1 and 28 < starts[0].row <= 32
    assert (summary.already_done, summary.calls) == (30, 10)
    rows = read_results(results)
    assert [int(r["row"]) for r in rows] == list(range(2, 42))
    assert {r["status"] for r in rows} == {"success"}
    assert len(sandbox.activities) == 40


def test_the_first_row_a_resume_must_read_and_the_counts_before_it() -> None:
    from importer.results.journal import Outcomes
    from importer.results.status import Status

    outcomes = Outcomes()
    for row in range(2, 20):
        outcomes.set(row, Status.SUCCESS)
    outcomes.set(7, Status.SENDING)  # left in flight: unknown
    outcomes.set(12, Status.FAILED)
    assert outcomes.first_to_read(2, keep_unknown=True) == 12
    assert outcomes.first_to_read(2, keep_unknown=False) == 7
    assert outcomes.first_to_read(13, keep_unknown=True) == 20  # past the last one recorded
    assert outcomes.first_to_read(5000, keep_unknown=True) == 5000
    assert outcomes.counts_between(2, 12) == {Status.SUCCESS: 9, Status.UNKNOWN: 1}


def test_a_resume_reads_outcomes_from_where_the_rewrites_success_rows_end(
    tmp_path: Path,
) -> None:
    """The final rewrite notes where its unbroken run of success rows from row 2 ends; read
    from there (and whatever a later run appended), the outcomes are those of a full read."""
    from importer.results.journal import Journal, Result, read_outcomes
    from importer.results.status import Status

    path = tmp_path / "r.csv"
    journal = Journal(path)
    journal.open()
    for row in [*range(2, 40), *range(41, 60)]:  # row 40 never recorded (a gap)
        journal.record(Result(row, f"k{row}", Status.SENDING, attempts=1))
        status = Status.FAILED if row == 50 else Status.SUCCESS
        journal.record(Result(row, f"k{row}", status, attempts=1))
    journal.finalize()
    assert journal.open_from is not None and journal.open_from[0] == 40  # the gap
    full = read_outcomes(path).as_dict()
    assert read_outcomes(path, journal.open_from).as_dict() == full
    # A later run appends (row 50 sent again, row 40 now, row 3 touched by a reconciliation).
    again = Journal(path)
    again.open()
    again.record(Result(50, "k50", Status.SUCCESS, attempts=2))
    again.record(Result(40, "k40", Status.UNKNOWN, attempts=1))
    again.record(Result(3, "k3", Status.UNKNOWN, attempts=1))
    again.close()
    full = read_outcomes(path).as_dict()
    assert full[3] is Status.UNKNOWN and full[40] is Status.UNKNOWN
    assert read_outcomes(path, journal.open_from).as_dict() == full
