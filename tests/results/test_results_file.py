"""ResultsFile: the one object that owns a results file's names, lock, resume check and
completion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from importer.exceptions import ResultsFileError
from importer.results import ResultsFile, Status
from importer.results.fingerprint import Fingerprints
from importer.results.journal import Result


def test_default_name_is_the_inputs_stem_in_the_current_or_given_folder(tmp_path: Path) -> None:
    assert ResultsFile.for_input("drop/leads.csv").path == Path("leads.results.csv")
    assert ResultsFile.for_input("leads.xlsx", folder=tmp_path).path == (
        tmp_path / "leads.results.csv"
    )
    assert ResultsFile.for_input("leads.csv", tmp_path / "x.csv").path == tmp_path / "x.csv"


def test_a_missing_folder_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    results = ResultsFile(tmp_path / "nowhere" / "r.csv")
    with pytest.raises(ResultsFileError, match="does not exist"), results.claim():
        pass


def test_claim_holds_the_lock_and_reads_what_earlier_runs_recorded(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    first = ResultsFile(path)
    with first.claim():
        first.journal.open()
        first.journal.record(Result(2, "a@x", Status.SUCCESS, activity_id="A"))
        first.journal.record(Result(3, "b@x", Status.SENDING, attempts=1))
        in_use = pytest.raises(ResultsFileError, match="in use by another lsq-import run")
        with in_use, ResultsFile(path).claim():
            pass
        counts, report = first.finish()
    assert counts == {Status.SUCCESS: 1, Status.UNKNOWN: 1}
    assert report.unknown_rows == [3]
    second = ResultsFile(path)
    with second.claim():
        assert second.previous.get(2) is Status.SUCCESS
        assert second.previous.get(3) is Status.UNKNOWN
        assert second.previous.get(4) is None


def test_resume_check_and_completion_follow_the_inputs_content(tmp_path: Path) -> None:
    source, mapping = tmp_path / "in.csv", tmp_path / "m.yaml"
    source.write_text("email\na@x\n")
    mapping.write_text("# mapping\n")
    results = ResultsFile(tmp_path / "r.csv")
    with results.claim():
        results.journal.open()
        results.journal.record(Result(2, "a@x", Status.SUCCESS))
        results.check_resume(Fingerprints.of(source, mapping), force=False)
        results.finish()
    assert not results.is_complete(source)
    results.mark_complete(Fingerprints.of(source, mapping))
    assert results.is_complete(source)

    source.write_text("email\nb@x\n")
    assert not results.is_complete(source)
    again = ResultsFile(results.path)
    with again.claim():
        with pytest.raises(ResultsFileError, match="is not the file"):
            again.check_resume(Fingerprints.of(source, mapping), force=False)
        again.check_resume(Fingerprints.of(source, mapping), force=True)


def test_validation_never_replaces_a_runs_results(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    run = ResultsFile(path)
    with run.claim():
        run.journal.open()
        run.journal.record(Result(2, "a@x", Status.SUCCESS))
        run.finish()
    with pytest.raises(ResultsFileError, match="holds the outcomes of a run"):
        ResultsFile(path).open_for_validation()

    checked = tmp_path / "check.csv"
    first = ResultsFile(checked).open_for_validation()
    first.record(Result(2, "", Status.INVALID, error_message="bad"))
    first.finalize()
    second = ResultsFile(checked).open_for_validation()  # a validation's file may be replaced
    second.finalize()
    assert checked.read_text().splitlines()[1:] == []


@pytest.mark.parametrize(
    "text",
    ['{"counts": [1]}', '{"counts": {"bogus": 3}}', "[" * 100_000 + "]" * 100_000],
    ids=["counts a list", "counts not statuses", "nested too deep"],
)
def test_hand_edited_metadata_is_damaged_not_an_internal_error(tmp_path, text: str) -> None:
    from importer.exceptions import ResultsFileError
    from importer.results.fingerprint import Fingerprints

    results = tmp_path / "r.csv"
    good = {"input": "a", "input_digest": "x", "mapping": "m", "mapping_digest": "y"}
    body = text if text.startswith("[") else json.dumps({**good, **json.loads(text)})
    (tmp_path / "r.csv.meta.json").write_text(body)
    with pytest.raises(ResultsFileError, match="damaged"):
        Fingerprints.load(results)


def test_a_hash_prefetched_before_the_lock_is_not_trusted_once_the_file_changed(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    from ..conftest import import_into

    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(6), tmp_path / "r.csv"
    import_into(sandbox, source, results, limit=4)
    current = Fingerprints.of(source, Path(__file__).parents[2] / "mappings" / "example.yaml")
    results_file = ResultsFile(results)
    results_file.prefetch()  # as a run does before it loads the mapping
    assert results_file._prefetched is not None
    results_file._prefetched.thread.join()
    # Meanwhile (before the run takes the lock) the file is edited, to the same size.
    text = results.read_text(encoding="utf-8")
    results.write_text(text.replace(",success,", ",skipped,", 1), encoding="utf-8")
    assert len(results.read_bytes()) == len(text.encode())
    with results_file.claim(), pytest.raises(ResultsFileError, match="was changed since"):
        results_file.check_resume(current, force=False)
