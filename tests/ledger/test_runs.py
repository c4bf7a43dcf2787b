"""The ledger end to end: what a second file, results file, directory or night sends.

Every run here is a real import against the sandbox over loopback, into a new ledger of each
backend (``ledger_at``: an SQLite file, a PostgreSQL schema); a test whose point is the
per-user default ledger (each test has its own data directory, see tests/conftest.py) says so."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from importer.exitcodes import ExitStatus
from importer.ledger.location import is_url

from ..conftest import EXAMPLE_MAPPING, SAMPLE_CSV, import_into, read_results
from ..test_faults import _env


def sample_records(n: int) -> tuple[list[str], list[list[str]]]:
    with open(SAMPLE_CSV, newline="", encoding="utf-8-sig") as handle:
        header, *records = list(csv.reader(handle))
    return header, records[:n]


def write(path: Path, header: list[str], records: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows([header, *records])
    return path


def by_status(results: Path) -> Counter[tuple[str, str]]:
    return Counter((line["status"], line["error_type"]) for line in read_results(results))


def test_the_same_file_twice_with_two_results_files_sends_each_activity_once(
    tmp_path: Path, sample_rows, sandbox_thread, ledger_at: str
) -> None:
    box = sandbox_thread(rate=100, per=1.0)
    source = sample_rows(20)
    first = import_into(box, source, tmp_path / "one.csv", ledger=ledger_at)
    assert first.by_status == {"success": 20} and len(box.activities) == 20
    assert first.ledger == ledger_at  # this backend's, not the default one
    second = import_into(box, source, tmp_path / "two.csv", ledger=ledger_at)
    assert len(box.activities) == 20 and second.calls == 0
    assert second.exit_status is ExitStatus.SUCCESS
    assert second.already_imported == 20
    assert by_status(tmp_path / "two.csv") == {("skipped", "already imported"): 20}
    lines = {int(line["row"]): line for line in read_results(tmp_path / "one.csv")}
    again = read_results(tmp_path / "two.csv")[0]
    row = int(again["row"])
    assert again["error_message"] == (
        f"already imported {again['error_message'].split()[2]} "
        f"{again['error_message'].split()[3]} UTC from {source.resolve()} row {row} "
        f"(activity {lines[row]['activity_id']})"
    )
    assert "20 rows skipped: their activity is already imported" in second.to_text()
    assert second.to_dict()["already_imported"] == 20


def test_an_overlapping_second_file_sends_only_its_new_half(
    tmp_path: Path, sandbox_thread, ledger_at: str
) -> None:
    box = sandbox_thread(rate=100, per=1.0)
    header, records = sample_records(30)
    monday = write(tmp_path / "monday.csv", header, records[:20])
    tuesday = write(tmp_path / "tuesday.csv", header, records[10:30])  # "the last 48 hours"
    import_into(box, monday, tmp_path / "monday.results.csv", ledger=ledger_at)
    summary = import_into(box, tuesday, tmp_path / "tuesday.results.csv", ledger=ledger_at)
    assert len(box.activities) == 30 and box.duplicate_leads() == 0
    assert summary.already_imported == 10
    assert by_status(tmp_path / "tuesday.results.csv") == {
        ("skipped", "already imported"): 10,
        ("success", ""): 10,
    }
    skipped = [
        int(line["row"])
        for line in read_results(tmp_path / "tuesday.results.csv")
        if line["status"] == "skipped"
    ]
    assert skipped == list(range(2, 12))  # tuesday's first ten rows are monday's last ten


def test_a_renamed_copy_sends_nothing_and_a_corrected_row_is_sent(
    tmp_path: Path, sandbox_thread, ledger_at: str
) -> None:
    box = sandbox_thread(rate=100, per=1.0)
    header, records = sample_records(12)
    original = write(tmp_path / "export.csv", header, records)
    import_into(box, original, tmp_path / "export.results.csv", ledger=ledger_at)
    copy = tmp_path / "export (1).csv"
    copy.write_bytes(original.read_bytes())
    renamed = import_into(box, copy, tmp_path / "copy.results.csv", ledger=ledger_at)
    assert renamed.calls == 0 and len(box.activities) == 12
    # A re-export with one row corrected (its note): that row is a different activity.
    fixed = [list(r) for r in records]
    notes = header.index("notes")
    fixed[4][notes] = fixed[4][notes] + " (corrected)"
    reexport = write(tmp_path / "export-fixed.csv", header, fixed)
    summary = import_into(box, reexport, tmp_path / "fixed.results.csv", ledger=ledger_at)
    assert len(box.activities) == 13
    lines = {int(line["row"]): line for line in read_results(tmp_path / "fixed.results.csv")}
    assert lines[6]["status"] == "success"
    assert all(lines[r]["status"] == "skipped" for r in lines if r != 6)
    assert box.activities[-1]["ActivityNote"].endswith("(corrected)")
    assert summary.already_imported == 11


def test_reimport_sends_again_once_and_no_ledger_ignores_it(
    tmp_path: Path, sample_rows, sandbox_thread, ledger_at: str
) -> None:
    box = sandbox_thread(rate=100, per=1.0)
    source = sample_rows(5)
    import_into(box, source, tmp_path / "one.csv", ledger=ledger_at)
    again = import_into(box, source, tmp_path / "two.csv", reimport=True, ledger=ledger_at)
    assert again.by_status == {"success": 5} and len(box.activities) == 10
    # The ledger now names the re-import: a third run skips, pointing at two.csv's ids.
    third = import_into(box, source, tmp_path / "three.csv", ledger=ledger_at)
    ids = {line["activity_id"] for line in read_results(tmp_path / "two.csv")}
    reasons = [line["error_message"] for line in read_results(tmp_path / "three.csv")]
    assert third.calls == 0 and all(any(i in r for i in ids) for r in reasons)
    off = import_into(box, source, tmp_path / "four.csv", ledger=False)
    assert off.by_status == {"success": 5} and len(box.activities) == 15


def test_identical_rows_in_one_file_post_one_activity(
    tmp_path: Path, sandbox_thread, ledger_at: str
) -> None:
    box = sandbox_thread(rate=100, per=1.0)
    header, records = sample_records(3)
    source = write(tmp_path / "twice.csv", header, [records[0], records[1], records[0]])
    summary = import_into(box, source, tmp_path / "r.csv", ledger=ledger_at)
    assert len(box.activities) == 2
    lines = {int(line["row"]): line for line in read_results(tmp_path / "r.csv")}
    assert lines[4]["status"] == "skipped" and "row 2 (activity" in lines[4]["error_message"]
    assert summary.exit_status is ExitStatus.SUCCESS


def test_dedupe_payload_sends_a_row_whose_lead_changed_and_off_sends_everything(
    tmp_path: Path, sandbox_thread, ledger_at: str
) -> None:
    box = sandbox_thread(rate=100, per=1.0)
    header, records = sample_records(4)
    payload = tmp_path / "payload.yaml"
    text = EXAMPLE_MAPPING.read_text(encoding="utf-8")
    assert "\noptions:\n" in text
    payload.write_text(text.replace("\noptions:\n", "\noptions:\n  dedupe: payload\n"))
    off = tmp_path / "off.yaml"
    off.write_text(text.replace("\noptions:\n", "\noptions:\n  dedupe: off\n"))
    first = write(tmp_path / "a.csv", header, records)
    import_into(box, first, tmp_path / "a.results.csv", mapping=payload, ledger=ledger_at)
    moved = [list(r) for r in records]
    moved[0][header.index("city")] = "Nagpur"  # a lead attribute, not the activity
    second = write(tmp_path / "b.csv", header, moved)
    summary = import_into(
        box, second, tmp_path / "b.results.csv", mapping=payload, ledger=ledger_at
    )
    assert summary.already_imported == 3 and len(box.activities) == 5
    # The default (activity) would have skipped it: the activity is the same.
    default = import_into(box, second, tmp_path / "c.results.csv", ledger=ledger_at)
    assert default.calls == 0
    # Activities imported in the default mode, then a mapping switched to payload: what that
    # import's lead looked like is not known, so nothing is sent twice.
    header2, more = sample_records(8)
    later = write(tmp_path / "later.csv", header2, more[4:])
    import_into(box, later, tmp_path / "e.results.csv", ledger=ledger_at)
    before = len(box.activities)
    switched = import_into(
        box, later, tmp_path / "f.results.csv", mapping=payload, ledger=ledger_at
    )
    assert switched.calls == 0 and len(box.activities) == before
    everything = import_into(box, first, tmp_path / "d.results.csv", mapping=off, ledger=ledger_at)
    assert everything.by_status == {"success": 4} and len(box.activities) == before + 4


def test_runs_from_two_directories_with_default_results_files_send_once(
    tmp_path: Path, sample_rows, sandbox_thread, ledger_at: str
) -> None:
    """The case that made 40 activities of 20 rows: the default results file lives in the
    current directory, so a second directory's run had no results to resume from. SQLite: the
    account's default ledger, the one cron and a run by hand share; PostgreSQL: named."""
    box = sandbox_thread(rate=100, per=1.0)
    source = sample_rows(20)
    named = ["--ledger", ledger_at] if is_url(ledger_at) else []
    command = [
        sys.executable, "-m", "importer", "run", str(source), "-m", str(EXAMPLE_MAPPING),
        "--host", box.base_url, "--rate", "100", "--per", "1", "--quiet", *named,
    ]  # fmt: skip
    for folder in ("cron", "by-hand"):
        (tmp_path / folder).mkdir()
        done = subprocess.run(
            command, cwd=tmp_path / folder, env=_env(), capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
    assert len(box.activities) == 20
    assert "20 rows skipped: their activity is already imported" in done.stdout + done.stderr


def test_an_unopenable_ledger_stops_before_sending_with_exit_2(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    box = sandbox_thread(rate=100, per=1.0)
    bad = tmp_path / "ledger.sqlite"
    bad.write_text("not a database, a note someone saved here\n" * 100)
    done = subprocess.run(
        [
            sys.executable, "-m", "importer", "run", str(sample_rows(3)), "-m",
            str(EXAMPLE_MAPPING), "--host", box.base_url, "--ledger", str(bad), "--quiet",
            "--results", str(tmp_path / "r.csv"),
        ],
        env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and str(bad) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(box.activities) == 0
    assert bad.read_text().startswith("not a database")


@pytest.mark.parametrize("token", [True, False], ids=["token", "content"])
def test_another_files_run_settles_a_finished_runs_lost_answers_by_lookup(
    tmp_path: Path, sample_rows, sandbox_thread, token: bool, ledger_at: str
) -> None:
    """Every answer of a first run is lost (half its calls landed): its rows stay unknown and
    keep their claims. A copy of the file under another name, with its own results file, meets
    those claims (stale: that run is over), looks up what the first run sent (by its row token,
    or by content) and skips what landed, sends what did not: each activity once."""
    from importer.sandbox import FaultConfig
    from importer.sandbox.faults import FaultDraws

    from ..reconcile.test_row_token import token_mapping

    faults = FaultConfig.from_spec("drop_before=0.5,drop_after=0.5,seed=3")
    box = sandbox_thread(rate=100, per=1.0, faults=faults)
    mapping = token_mapping(tmp_path) if token else EXAMPLE_MAPPING
    source = sample_rows(12)
    import_into(
        box, source, tmp_path / "one.csv", mapping=mapping, reconcile=False, ledger=ledger_at
    )
    assert {line["status"] for line in read_results(tmp_path / "one.csv")} == {"unknown"}
    landed = len(box.activities)
    assert 0 < landed < 12
    box.faults = FaultConfig()
    box.draws = FaultDraws(box.faults)  # the rest of the night goes well
    copy = tmp_path / "copy.csv"
    copy.write_bytes(source.read_bytes())
    summary = import_into(
        box, copy, tmp_path / "two.csv", mapping=mapping, settle_delay=0, ledger=ledger_at
    )
    assert len(box.activities) == 12 and box.duplicate_leads() == 0
    notes = Counter(a["ActivityNote"] + a["ActivityDateTime"] for a in box.activities)
    assert max(notes.values()) == 1
    assert summary.already_imported == landed
    assert by_status(tmp_path / "two.csv") == {
        ("skipped", "already imported"): landed,
        ("success", ""): 12 - landed,
    }
    # And the first results file's own rerun finds them all (its lookups, the ledger agrees).
    again = import_into(
        box, source, tmp_path / "one.csv", mapping=mapping, settle_delay=0, ledger=ledger_at
    )
    assert len(box.activities) == 12 and again.calls == 0
