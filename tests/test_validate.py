"""``validate``: every row mapped, nothing sent; invalid rows by row and column; payloads."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from importer.cli import cli
from importer.exceptions import ResultsFileError
from importer.exitcodes import ExitStatus
from importer.mapping import load_mapping
from importer.reader import open_input
from importer.results.journal import Journal, Result
from importer.validate import validate_file

from .conftest import EXAMPLE_MAPPING, SAMPLE_CSV, read_results


def invoke(*args: object, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def sample_records() -> tuple[list[str], list[list[str]]]:
    with open(SAMPLE_CSV, newline="", encoding="utf-8-sig") as handle:
        records = list(csv.reader(handle))
    return records[0], records[1:]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows([header, *rows])
    return path


def thousand_rows_with_planted_errors(path: Path) -> dict[int, str]:
    """1,000 rows with unique e-mails; 10 of them broken. Returns row number -> column."""
    header, records = sample_records()
    email, visited = header.index("email"), header.index("visited_at")
    rows = []
    for i in range(1000):
        cells = list(records[i % len(records)])
        cells[email] = f"u{i}.{cells[email]}"
        rows.append(cells)
    planted: dict[int, str] = {}
    for n, index in enumerate((3, 98, 211, 333, 402, 517, 640, 777, 901, 999)):
        if n % 2:
            rows[index][email] = ""  # the SearchBy value is missing
            planted[index + 2] = "email"
        else:
            rows[index][visited] = "31/02/2024 10:00"  # no such day
            planted[index + 2] = "visited_at"
    write_csv(path, header, rows)
    return planted


def test_thousand_rows_ten_planted_errors_found_by_row_and_column(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    planted = thousand_rows_with_planted_errors(source)
    results = tmp_path / "check.csv"

    outcome = invoke("validate", source, "-m", EXAMPLE_MAPPING, "--results", results)

    assert outcome.exit_code == 1, outcome.output
    assert "1000 rows checked" in outcome.output and "990 valid, 10 invalid" in outcome.output
    lines = read_results(results)
    found = {int(line["row"]): line for line in lines}
    assert set(found) == set(planted)
    for row, column in planted.items():
        assert found[row]["status"] == "invalid"
        assert f"column '{column}'" in found[row]["error_message"], found[row]
    assert "visited_at 5" in outcome.output and "email 5" in outcome.output


def test_summary_counts_and_exit_status(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    planted = thousand_rows_with_planted_errors(source)
    summary = validate_file(source, EXAMPLE_MAPPING)
    assert (summary.rows, summary.valid, summary.invalid, summary.skipped) == (1000, 990, 10, 0)
    assert summary.exit_status is ExitStatus.ROWS_FAILED
    assert [row for row, _ in summary.problems] == sorted(planted)[:5]
    assert summary.invalid_by_column == {"visited_at": 5, "email": 5}


def test_payloads_are_exactly_what_run_would_send(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    planted = thousand_rows_with_planted_errors(source)
    payloads = tmp_path / "bodies.jsonl"

    outcome = invoke("validate", source, "-m", EXAMPLE_MAPPING, "--payloads", payloads)

    assert outcome.exit_code == 1, outcome.output
    lines = [json.loads(line) for line in payloads.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 990
    mapping = load_mapping(EXAMPLE_MAPPING)
    with open_input(source) as rows:
        expected = {
            row.number: mapping.build(row) for row in rows.rows() if row.number not in planted
        }
    assert [line["row"] for line in lines] == sorted(expected)
    for line in lines:
        payload = expected[line["row"]]
        assert line["body"] == payload.body
        assert line["key"] == payload.key
    assert "Müller" in payloads.read_text(encoding="utf-8")  # UTF-8 as sent, not \\u escapes


def test_duplicate_keys_are_reported_with_rows_but_allowed(tmp_path: Path) -> None:
    header, records = sample_records()
    email = header.index("email")
    rows = [list(records[i]) for i in range(8)]
    rows[2][email] = rows[0][email]  # rows 2 and 4: one lead
    rows[3][email] = "Repeat@Example.com"
    rows[5][email] = "repeat@example.com"  # e-mail keys compare case-insensitively
    rows[7][email] = "REPEAT@example.com"
    source = write_csv(tmp_path / "dups.csv", header, rows)

    summary = validate_file(source, EXAMPLE_MAPPING)

    assert summary.exit_status is ExitStatus.SUCCESS
    assert (summary.duplicate_keys, summary.duplicate_rows) == (2, 3)
    text = summary.to_text()
    assert "2 leads appear on more than one row" in text
    assert f"{rows[0][email].casefold()} (rows 2, 4)" in text
    assert "repeat@example.com (rows 5, 7, 9)" in text


def test_many_duplicates_name_a_few_and_count_all(tmp_path: Path) -> None:
    header, records = sample_records()
    email = header.index("email")
    rows = []
    for i in range(60):  # 20 leads, 3 rows each
        cells = list(records[i % len(records)])
        cells[email] = f"lead{i % 20}@example.com"
        rows.append(cells)
    source = write_csv(tmp_path / "dups.csv", header, rows)
    summary = validate_file(source, EXAMPLE_MAPPING)
    assert (summary.duplicate_keys, summary.duplicate_rows) == (20, 40)
    assert len(summary.duplicate_examples) == 5
    assert "lead0@example.com (rows 2, 22, 42)" in summary.duplicates_text()
    assert summary.duplicates_text().count("@") == 5


@pytest.mark.parametrize("digest", [lambda key: 0, lambda key: len(key) % 3, lambda key: -7])
def test_colliding_key_digests_report_no_false_duplicate(tmp_path: Path, digest) -> None:
    """The duplicate check keeps a digest per key; distinct keys sharing one (here: every key,
    or three buckets) must not be reported, and the real duplicates still must, with the same
    figures and example rows as without collisions."""
    header, records = sample_records()
    email, visited = header.index("email"), header.index("visited_at")
    rows = []
    for i in range(120):
        cells = list(records[i % len(records)])
        cells[email] = f"lead{i}@example.com"  # distinct keys, colliding digests
        rows.append(cells)
    rows[30][email] = rows[10][email]  # rows 12 and 32: one lead
    rows[50][email] = rows[10][email].upper()  # and row 52 (keys compare case-insensitively)
    rows[90][email] = rows[70][email]  # rows 72 and 92
    rows[100][email] = rows[80][email]
    rows[100][visited] = "31/02/2024 10:00"  # invalid: not counted as a duplicate
    source = write_csv(tmp_path / "collide.csv", header, rows)

    exact = validate_file(source, EXAMPLE_MAPPING)
    collided = validate_file(source, EXAMPLE_MAPPING, key_digest=digest)

    assert (exact.duplicate_keys, exact.duplicate_rows) == (2, 3)
    assert exact.duplicate_examples == [
        ("lead10@example.com", 3, [12, 32, 52]),
        ("lead70@example.com", 2, [72, 92]),
    ]
    assert (collided.duplicate_keys, collided.duplicate_rows) == (2, 3)
    assert collided.duplicate_examples == exact.duplicate_examples
    assert collided.duplicates_text() == exact.duplicates_text()
    assert (collided.valid, collided.invalid) == (exact.valid, exact.invalid) == (119, 1)

    unique = write_csv(tmp_path / "unique.csv", header, [r for n, r in enumerate(rows) if n < 30])
    none = validate_file(unique, EXAMPLE_MAPPING, key_digest=digest)
    assert (none.duplicate_keys, none.duplicate_rows, none.duplicate_examples) == (0, 0, [])
    assert none.duplicates_text() == ""


def test_key_digest_table_grows_and_marks_repeats() -> None:
    """The table behind the duplicate check: every digest kept across growths (from 16 slots
    to 2,048), a digest added twice marked, one added once not, and 0 and negative digests
    (hash() gives both) kept like the others."""
    from importer.validate import _KeyDigests

    table = _KeyDigests(capacity=16)
    digests = [0, -1, 1 << 61, *range(1, 1500)]
    for value in digests:
        table.add(value)
    assert table.repeated == 0
    for value in digests[:300:3]:
        table.add(value)
        table.add(value)
    assert table.repeated == 100
    assert [table.came_again(v) for v in digests[:6]] == [True, False, False, True, False, False]
    assert not table.came_again(1 << 40)


def test_skipped_rows_are_recorded_as_skipped_not_invalid(tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        EXAMPLE_MAPPING.read_text(encoding="utf-8").replace(
            "lead:\n", "filters:\n  skip_if:\n    - {column: city, equals: Pune}\n\nlead:\n", 1
        ),
        encoding="utf-8",
    )
    header, records = sample_records()
    city = header.index("city")
    pune = [i + 2 for i, cells in enumerate(records) if cells[city] == "Pune"]
    results = tmp_path / "check.csv"

    summary = validate_file(SAMPLE_CSV, mapping, results=results)

    assert pune and summary.skipped == len(pune)
    assert summary.valid == len(records) - len(pune) and summary.invalid == 0
    assert summary.exit_status is ExitStatus.SUCCESS
    lines = read_results(results)
    assert [int(line["row"]) for line in lines] == pune
    assert {line["status"] for line in lines} == {"skipped"}
    assert "city" in lines[0]["error_message"]


def test_a_ragged_row_is_invalid_and_the_rest_is_checked(tmp_path: Path) -> None:
    header, records = sample_records()
    rows = [list(records[i]) for i in range(4)]
    rows[1] = [*rows[1], "an extra cell"]
    source = write_csv(tmp_path / "ragged.csv", header, rows)
    summary = validate_file(source, EXAMPLE_MAPPING)
    assert (summary.valid, summary.invalid) == (3, 1)
    assert summary.problems[0][0] == 3
    assert "cells" in summary.problems[0][1]


def test_a_stray_quote_is_one_invalid_row_and_no_row_vanishes(tmp_path: Path) -> None:
    # The sample's notes are quoted. A stray '"' opening row 4's city used to be closed by the
    # quote of row 5's note: row 4 came out valid with the cells of both in one, and row 5 was
    # gone, every row number after it one lower.
    lines = SAMPLE_CSV.read_text(encoding="utf-8-sig").splitlines()[:21]
    city = lines[3].split(",")[4]
    lines[3] = lines[3].replace(f",{city},", f',"{city},', 1)
    source = tmp_path / "stray.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = invoke("validate", source, "-m", EXAMPLE_MAPPING, "--results", tmp_path / "c.csv")
    assert result.exit_code == 1, result.output
    assert "20 rows checked" in result.output and "19 valid, 1 invalid" in result.output
    assert "row 4: line 4, column 'city': a quoted cell opens here and swallows" in result.output
    assert [(r["row"], r["status"]) for r in read_results(tmp_path / "c.csv")] == [("4", "invalid")]


def test_local_times_that_happen_twice_are_warned_about_by_row_and_column(
    tmp_path: Path,
) -> None:
    # 01:30 on 3 November 2024 happened twice in New York (EDT, then EST): it is sent as the
    # first, as documented, but the file cannot say which one was meant, so validate says so.
    mapping = tmp_path / "ny.yaml"
    mapping.write_text(
        EXAMPLE_MAPPING.read_text().replace("timezone: Asia/Kolkata", "timezone: America/New_York")
    )
    header, records = sample_records()
    column = header.index("visited_at")
    rows = [list(records[i]) for i in range(12)]
    folds = {3: "03/11/2024 01:30", 5: "03/11/2024 01:05", 8: "03/11/2024 01:30"}
    folds |= {9: "03/11/2024 01:59", 10: "03/11/2024 01:00", 11: "03/11/2024 01:45"}
    for i, text in folds.items():
        rows[i][column] = text
    rows[0][column] = "03/11/2024 02:00"  # once only (EST): no warning
    rows[1][column] = "03/11/2024 00:59"  # once only (EDT)
    source = write_csv(tmp_path / "ny.csv", header, rows)

    result = invoke("validate", source, "-m", mapping)
    assert result.exit_code == 0, result.output  # sent as documented: a warning, not invalid
    assert "12 valid, 0 invalid" in result.output
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("warning: 6 "))
    assert "happens twice is sent as the first" in lines[start], lines[start]

    def fold(row: int, text: str, utc: str) -> str:
        return (
            f"  row {row}: column 'visited_at': '{text}' happens twice in America/New_York "
            f"(-04:00, then -05:00); sent as the first, {utc} UTC"
        )

    assert lines[start + 1 : start + 7] == [
        fold(5, "03/11/2024 01:30", "2024-11-03 05:30:00"),
        fold(7, "03/11/2024 01:05", "2024-11-03 05:05:00"),
        fold(10, "03/11/2024 01:30", "2024-11-03 05:30:00"),
        fold(11, "03/11/2024 01:59", "2024-11-03 05:59:00"),
        fold(12, "03/11/2024 01:00", "2024-11-03 05:00:00"),
        "  ... and 1 more",
    ]
    summary = validate_file(source, mapping)
    assert summary.warnings == 6 and summary.to_dict()["warnings"] == 6
    assert summary.warnings_by_column == {"visited_at": 6}


def test_a_runs_results_file_is_never_overwritten(tmp_path: Path) -> None:
    results = tmp_path / "leads.results.csv"
    journal = Journal(results)
    journal.open()
    journal.record(Result(2, "a@example.com", "success", activity_id="x"))
    journal.finalize()
    before = results.read_bytes()
    with pytest.raises(ResultsFileError, match="another --results file"):
        validate_file(SAMPLE_CSV, EXAMPLE_MAPPING, results=results)
    assert results.read_bytes() == before


def test_an_earlier_validation_file_is_replaced(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    thousand_rows_with_planted_errors(source)
    results = tmp_path / "check.csv"
    validate_file(source, EXAMPLE_MAPPING, results=results)
    assert len(read_results(results)) == 10
    validate_file(SAMPLE_CSV, EXAMPLE_MAPPING, results=results)  # now a clean file
    assert read_results(results) == []


def test_cli_all_valid_exits_0(tmp_path: Path, sample_rows) -> None:
    outcome = invoke("validate", sample_rows(20), "-m", EXAMPLE_MAPPING)
    assert outcome.exit_code == 0, outcome.output
    assert "20 valid, 0 invalid" in outcome.output and "no invalid rows" in outcome.output


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (("event: 105", "event: visit"), "activity.event"),
        (("city", "town"), "'town'"),
    ],
)
def test_cli_bad_mapping_exits_2_in_one_line(
    tmp_path: Path, change: tuple[str, str], needle: str
) -> None:
    mapping = tmp_path / "bad.yaml"
    text = EXAMPLE_MAPPING.read_text(encoding="utf-8")
    assert change[0] in text
    mapping.write_text(text.replace(*change), encoding="utf-8")
    results = tmp_path / "check.csv"
    outcome = invoke("validate", SAMPLE_CSV, "-m", mapping, "--results", results)
    assert outcome.exit_code == 2, outcome.output
    message = outcome.stderr.strip()
    assert "\n" not in message and "bad.yaml" in message and needle in message
    assert not results.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--host", "api.leadsquared.com"],  # --host without --online
        ["--bogus"],
    ],
)
def test_cli_bad_options_exit_2(args: list[str]) -> None:
    outcome = invoke("validate", SAMPLE_CSV, "-m", EXAMPLE_MAPPING, *args)
    assert outcome.exit_code == 2, outcome.output


def test_cli_missing_input_exits_2() -> None:
    outcome = invoke("validate", "nope.csv", "-m", EXAMPLE_MAPPING)
    assert outcome.exit_code == 2, outcome.output
    assert "nope.csv" in outcome.stderr


def test_help_has_an_example() -> None:
    outcome = invoke("validate", "--help")
    assert outcome.exit_code == 0 and "Example" in outcome.output
