"""The errors file: a run's bad rows in the input's own columns, fixed and imported again.

Through the command line, against a sandbox on loopback, with real files: what ``run
--errors-csv`` and ``report --errors-csv`` write, that the corrected file (as CSV or as XLSX)
imports with the same mapping and sends exactly its rows, and that ``report`` on the new
results names the original rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner

from importer.cli import cli
from importer.results.errors_csv import ERROR_COLUMNS
from importer.results.journal import escape_cell
from importer.sandbox import Sandbox

from .conftest import EXAMPLE_MAPPING, import_into, read_results
from .test_cli import KEYS_ENV, assert_one_line_error

BOM = b"\xef\xbb\xbf"
RUN_LIMITS = ("--rate", "100", "--per", "1", "--quiet")


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], env=KEYS_ENV)


def creates(sandbox: Sandbox) -> int:
    return sum(call.path.endswith("CreateCustom") for call in sandbox.calls)


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.reader(handle))


def write_csv(path: Path, records: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(records)


def landed(sandbox: Sandbox) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(lead, activity) of every activity, without the ids and times the sandbox made."""
    return sorted(
        (
            (
                {k: v for k, v in sandbox.leads[a["LeadId"]].items() if k != "ProspectID"},
                {k: v for k, v in a.items() if k not in ("Id", "LeadId", "CreatedAt")},
            )
            for a in sandbox.activities
        ),
        key=json.dumps,
    )


# Rows 4 and 8 are refused by the sandbox (their e-mail), row 6 by the mapping (no 31 February);
# row 8 also holds a cell a spreadsheet would run as a formula, and a phone starting with '+'.
BAD = {4: ("email", "not-an-email"), 6: ("visited_at", "31/02/2025 10:00"), 8: ("email", "bad@")}


@pytest.fixture
def planted(sample_rows) -> tuple[Path, list[list[str]]]:
    """10 sample rows with the bad cells of BAD planted; and the clean records."""
    source = sample_rows(10)
    clean = read_csv(source)
    clean[7][clean[0].index("notes")] = "=1+2 asked for a callback"
    assert clean[7][clean[0].index("phone")].startswith("+")
    records = [list(r) for r in clean]
    for row, (column, value) in BAD.items():
        records[row - 1][clean[0].index(column)] = value
    write_csv(source, records)
    write_csv(source.with_name("clean.csv"), clean)
    return source, clean


@pytest.mark.parametrize("saved_as", ["csv", "xlsx"])
def test_the_errors_csv_of_a_run_holds_its_bad_rows_and_imports_once_corrected(
    tmp_path, sandbox_thread, planted, saved_as
) -> None:
    source, clean = planted
    sandbox = sandbox_thread(rate=100, per=1.0)
    errors = tmp_path / "leads.errors.csv"
    result = invoke(
        "run", source, "-m", EXAMPLE_MAPPING, "--host", sandbox.base_url, *RUN_LIMITS,
        "--results", tmp_path / "leads.results.csv", "--errors-csv", errors,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert f"wrote 3 rows of {source} to {errors} (2 failed, 1 invalid)" in result.stderr

    # Exactly the bad rows, with their own cells (escaped as in the results file), then why.
    assert errors.read_bytes().startswith(BOM)
    header, *rows = read_csv(errors)
    assert header == [*clean[0], *ERROR_COLUMNS]
    planted_records = read_csv(source)
    assert [r[: len(clean[0])] for r in rows] == [
        [escape_cell(c) for c in planted_records[n - 1]] for n in BAD
    ]
    assert [r[len(clean[0]) :][:3] for r in rows] == [
        ["4", "failed", "MXInvalidInputException"],
        ["6", "invalid", "invalid row"],
        ["8", "failed", "MXInvalidInputException"],
    ]
    assert "'not-an-email' is not a valid email address" in rows[0][-1]
    assert rows[1][-1].startswith("column 'visited_at': cannot parse '31/02/2025 10:00'")
    assert rows[0][1] == "Menon" and "José" in rows[0]  # accents, read back through the BOM

    # Corrected in the file as a person would (the formula-looking cells stay as written),
    # saved as CSV or as an Excel workbook.
    for record, number in zip(rows, BAD, strict=True):
        column = clean[0].index(BAD[number][0])
        record[column] = clean[number - 1][column]
    fixed = tmp_path / f"fixed.{saved_as}"
    if saved_as == "csv":
        write_csv(fixed, [header, *rows])
    else:
        book = openpyxl.Workbook()
        for record in [header, *rows]:
            book.active.append(record)
        book.save(fixed)

    before = creates(sandbox)
    result = invoke(
        "run", fixed, "-m", EXAMPLE_MAPPING, "--host", sandbox.base_url, *RUN_LIMITS,
        "--results", tmp_path / "fixed.results.csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert creates(sandbox) - before == 3  # those rows, and nothing else
    assert [line["status"] for line in read_results(tmp_path / "fixed.results.csv")] == [
        "success"
    ] * 3

    # What landed is what the clean file sends: cells unescaped ('+91..., =1+2...), no lsq_.
    expected = sandbox_thread(rate=100, per=1.0)
    import_into(expected, source.with_name("clean.csv"), tmp_path / "clean.results.csv")
    assert landed(sandbox) == landed(expected)


def test_report_on_an_errors_file_import_names_the_original_rows(
    tmp_path, sandbox_thread, planted
) -> None:
    source, _ = planted
    sandbox = sandbox_thread(rate=100, per=1.0)
    results = tmp_path / "leads.results.csv"
    import_into(sandbox, source, results)
    errors = tmp_path / "errors.csv"
    result = invoke("report", results, "--errors-csv", errors, "--status", "failed")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote 2 rows of {source} to {errors} (2 failed)"

    # Imported again uncorrected: they fail again, and the report names where they came from.
    again = tmp_path / "again.results.csv"
    result = invoke(
        "run", errors, "-m", EXAMPLE_MAPPING, "--host", sandbox.base_url, *RUN_LIMITS,
        "--results", again, "--errors-csv", tmp_path / "errors2.csv",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "rows 2, 3 (original rows 4, 8)" in result.output  # the run's own summary
    report = invoke("report", again)
    assert report.exit_code == 0, report.output
    assert "rows 2, 3 (original rows 4, 8)" in report.output
    as_json = json.loads(invoke("report", again, "--json", "-").output)
    assert as_json["errors"][0]["original_rows"] == [4, 8]

    # The next round's file keeps the original numbers, and the lsq_ columns once.
    header, *rows = read_csv(tmp_path / "errors2.csv")
    assert header.count("lsq_row") == 1 and header[-4:] == list(ERROR_COLUMNS)
    assert [r[-4] for r in rows] == ["4", "8"]

    # Without the errors file to read them from, the report says why it cannot name them.
    errors.unlink()
    report = invoke("report", again)
    assert report.exit_code == 0, report.output
    assert "(original rows" not in report.output
    assert "original rows (lsq_row) not named: " in report.output


def test_an_excel_input_gives_a_csv_of_the_sheets_rendered_cells(tmp_path, sandbox_thread) -> None:
    """From the sheet the run read (--sheet is recorded), with its cells as the reader
    renders them; re-imported with a mapping whose date format is a person's, the date
    cells still read as date cells."""
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        EXAMPLE_MAPPING.read_text().replace(
            'format: ["%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S"]', 'format: "%d/%m/%Y %H:%M"'
        )
    )
    book = openpyxl.Workbook()
    book.active.title = "Notes"
    sheet = book.create_sheet("March")
    sheet.append(["first_name", "last_name", "email", "phone", "city", "kyc_status",
                  "visited_at", "amount", "product", "notes"])  # fmt: skip
    when = dt.datetime(2024, 5, 1, 15, 0)
    sheet.append(["Asha", "Rao", "asha@example.com", 9845098450, "Pune", "Verified", when,
                  1499.5, "Demat Account", "ok"])  # fmt: skip
    sheet.append(["Ravi", "Iyer", "ravi@", 9845098451, "Pune", "Verified", when, 2500,
                  "Demat Account", "-"])  # fmt: skip
    source = tmp_path / "leads.xlsx"
    book.save(source)
    sandbox = sandbox_thread(rate=100, per=1.0)
    errors = tmp_path / "errors.csv"
    result = invoke(
        "run", source, "-m", mapping, "--sheet", "March", "--host", sandbox.base_url,
        *RUN_LIMITS, "--results", tmp_path / "r.csv", "--errors-csv", errors,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    header, *rows = read_csv(errors)
    assert [r[:10] for r in rows] == [
        ["Ravi", "Iyer", "ravi@", "9845098451", "Pune", "Verified", "2024-05-01 15:00:00",
         "2500", "Demat Account", "'-"]
    ]  # fmt: skip

    rows[0][2] = "ravi@example.com"
    write_csv(errors, [header, *rows])
    result = invoke(
        "run", errors, "-m", mapping, "--host", sandbox.base_url, *RUN_LIMITS,
        "--results", tmp_path / "fixed.results.csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    first, second = sandbox.activities
    assert second["ActivityDateTime"] == first["ActivityDateTime"] == "2024-05-01 09:30:00"
    assert second["ActivityNote"] == "Visited Pune. -"


def test_an_errors_file_without_rows_imports_as_nothing_to_do(
    tmp_path, sandbox_thread, sample_rows
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    results = tmp_path / "leads.results.csv"
    import_into(sandbox, sample_rows(3), results)
    errors = tmp_path / "errors.csv"
    result = invoke("report", results, "--errors-csv", errors)
    assert result.exit_code == 0, result.output
    assert "wrote 0 rows" in result.output and "(the header only)" in result.output
    before = len(sandbox.calls)
    result = invoke("run", errors, "-m", EXAMPLE_MAPPING, "--host", sandbox.base_url, *RUN_LIMITS)
    assert result.exit_code == 0, result.output
    assert len(sandbox.calls) == before


@pytest.fixture
def one_run(tmp_path, sandbox_thread, planted) -> tuple[Path, Path]:
    source, _ = planted
    results = tmp_path / "leads.results.csv"
    import_into(sandbox_thread(rate=100, per=1.0), source, results)
    return source, results


@pytest.mark.parametrize(
    ("damage", "needles"),
    [
        ("changed", ["changed since the run", "restore the file the run read"]),
        ("missing", ["cannot be read back (no such file)", "put the input back"]),
        ("no metadata", ["leads.results.csv.meta.json beside it", "which input file"]),
    ],
)
def test_report_errors_csv_refuses_an_input_it_cannot_trust(tmp_path, one_run, damage, needles):
    source, results = one_run
    if damage == "changed":
        source.write_text(source.read_text(encoding="utf-8") + "A,B,a@b.c,,,,,,,\n")
    elif damage == "missing":
        source.unlink()
    else:
        results.with_name(results.name + ".meta.json").unlink()
    errors = tmp_path / "errors.csv"
    result = invoke("report", results, "--errors-csv", errors)
    assert_one_line_error(result, 2, *needles)
    assert not errors.exists() and not list(tmp_path.glob(".errors.csv*"))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--status", "failed,unknown"], "--status lists the rows of one status"),
        (["--errors-csv", "{input}"], "leads.csv; choose another file"),
        (["--errors-csv", "{results}"], "a file this command reads or keeps"),
        (["--errors-csv", "nowhere/e.csv"], "does not exist"),
    ],
)
def test_report_errors_csv_bad_options_exit_2(one_run, monkeypatch, tmp_path, args, needle):
    source, results = one_run
    monkeypatch.chdir(tmp_path)
    args = [a.format(input=source, results=results) for a in args]
    assert_one_line_error(invoke("report", results, *args), 2, needle)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["{folder}"], "--errors-csv names one file"),
        (["{folder}/a.csv", "--dry-run"], "a dry run records no outcome"),
    ],
)
def test_run_errors_csv_bad_combinations_exit_2(tmp_path, sample_rows, args, needle) -> None:
    sample_rows(2, "a.csv")
    args = [a.format(folder=tmp_path) for a in args]
    result = invoke(
        "run", *args, "-m", EXAMPLE_MAPPING, "--sandbox", "--errors-csv", tmp_path / "e.csv"
    )
    assert_one_line_error(result, 2, needle)


def test_writing_an_errors_csv_holds_no_row_per_input_line(tmp_path) -> None:
    """The input is streamed in step with the results (the rows and their error texts are
    never all held): memory grows by the offsets' 8 bytes a results row, not by rows."""
    import tracemalloc

    from importer.results.errors_csv import write_errors_csv
    from importer.results.fingerprint import Fingerprints
    from importer.results.journal import COLUMNS

    def peak(n: int) -> int:
        folder = tmp_path / str(n)
        folder.mkdir()
        source, results = folder / "big.csv", folder / "big.results.csv"
        failed = {7, n // 2, n + 1}
        with open(source, "w", encoding="utf-8") as handle:
            handle.write("email,notes\n")
            handle.writelines(f"lead{i}@example.com,{'x' * 60}\n" for i in range(2, n + 2))
        with open(results, "w", encoding="utf-8") as handle:
            handle.write(",".join(COLUMNS) + "\n")
            handle.writelines(
                f"{i},lead{i}@example.com,failed,,,500,MXInvalidInputException,refused {i},1,"
                "2026-01-01T00:00:00Z\n"
                if i in failed
                else f"{i},lead{i}@example.com,success,a{i},l{i},200,,,1,2026-01-01T00:00:00Z\n"
                for i in range(2, n + 2)
            )
        Fingerprints.of(source, EXAMPLE_MAPPING).save(results)
        tracemalloc.start()
        try:
            written = write_errors_csv(results, folder / "errors.csv")
            used = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert written.rows == 3
        assert [r[2] for r in read_csv(folder / "errors.csv")[1:]] == [
            str(i) for i in sorted(failed)
        ]
        assert "refused" in read_csv(folder / "errors.csv")[2][-1]
        return used

    small, large = peak(30_000), peak(90_000)
    assert (large - small) / 60_000 < 24  # a row dict alone is hundreds of bytes


def test_run_keeps_its_exit_code_when_its_errors_csv_cannot_be_written(
    tmp_path, sandbox_thread, planted, monkeypatch
) -> None:
    """The rows were sent: a run never exits 2 ("nothing was sent") because its errors file
    could not be made; it says why in one line and exits with the run's own code."""
    import importer.cli
    from importer import run_import

    source, _ = planted

    def run_then_change_the_input(*args, **kwargs):
        summary = run_import(*args, **kwargs)
        source.write_text(source.read_text(encoding="utf-8") + "A,B,a@b.c,,,,,,,\n")
        return summary

    monkeypatch.setattr(importer.cli, "run_import", run_then_change_the_input)
    sandbox = sandbox_thread(rate=100, per=1.0)
    errors = tmp_path / "errors.csv"
    result = invoke(
        "run", source, "-m", EXAMPLE_MAPPING, "--host", sandbox.base_url, *RUN_LIMITS,
        "--results", tmp_path / "r.csv", "--errors-csv", errors,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        f"lsq-import: --errors-csv: {source} changed since the run that wrote "
        f"{tmp_path / 'r.csv'} (its SHA-256 is not the one in r.csv.meta.json): its rows may "
        "not be the rows numbered there; restore the file the run read"
    )
    assert not errors.exists()


def _errors_file(tmp_path: Path, statuses: list[str], drop: tuple[str, ...] = ()) -> Path:
    """An errors file of the sample's first rows, as report --errors-csv writes one."""
    from .conftest import SAMPLE_CSV

    with open(SAMPLE_CSV, newline="", encoding="utf-8-sig") as f:
        header, *rows = list(csv.reader(f))[: len(statuses) + 1]
    columns = [*header, *(c for c in ERROR_COLUMNS if c not in drop)]
    path = tmp_path / "leads.errors.csv"
    with open(path, "w", newline="", encoding="utf-8-sig") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for number, (row, status) in enumerate(zip(rows, statuses, strict=True), start=2):
            extra = {
                "lsq_row": str(number),
                "lsq_status": status,
                "lsq_error_type": "x",
                "lsq_error_message": "y",
            }
            writer.writerow([*row, *(extra[c] for c in ERROR_COLUMNS if c not in drop)])
    return path


def test_an_errors_files_unknown_rows_are_never_sent_from_it(tmp_path: Path) -> None:
    """Its results file knows nothing of them: sent from there, a row whose first call landed
    would land twice. They are refused with the way out; the others go."""
    path = _errors_file(tmp_path, ["failed", "unknown", "invalid"])
    result = invoke("run", path, "-m", EXAMPLE_MAPPING, "--dry-run", "--payloads", tmp_path / "p")
    assert result.exit_code == 1, result.output
    shown = [json.loads(line)["row"] for line in (tmp_path / "p").read_text().splitlines()]
    assert shown == [2, 4]
    assert "lsq_status is 'unknown'" in result.output and "lsq-import reconcile" in result.output


def test_an_errors_file_with_some_lsq_columns_deleted_is_still_read_as_one(
    tmp_path: Path,
) -> None:
    path = _errors_file(tmp_path, ["failed"], drop=("lsq_error_type", "lsq_error_message"))
    text = path.read_text(encoding="utf-8-sig").replace("Meera,", "'-Meera,", 1)
    path.write_text(text, encoding="utf-8-sig")
    result = invoke("run", path, "-m", EXAMPLE_MAPPING, "--dry-run", "--payloads", tmp_path / "p")
    assert result.exit_code == 0, result.output
    body = json.loads((tmp_path / "p").read_text())["body"]
    first = next(d["Value"] for d in body["LeadDetails"] if d["Attribute"] == "FirstName")
    assert first == "-Meera"  # the apostrophe lsq-import added is gone
