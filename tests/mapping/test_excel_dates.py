"""Typed Excel date cells are read whatever date formats the mapping declares; text is not."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import openpyxl
import yaml
from click.testing import CliRunner

from importer.cli import cli

from ..conftest import EXAMPLE_MAPPING, read_results


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["email", "visited_at", "dob"])
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def validate_payloads(
    tmp_path: Path, source: Path, mapping: Path
) -> tuple[int, str, dict[int, dict], dict[int, str]]:
    """validate's exit code and output, the bodies by row, the invalid rows' errors by row."""
    payloads, results = tmp_path / "bodies.jsonl", tmp_path / "r.csv"
    outcome = CliRunner().invoke(
        cli,
        ["validate", str(source), "-m", str(mapping), "--payloads", str(payloads)]
        + ["--results", str(results)],
    )
    lines = [json.loads(line) for line in payloads.read_text(encoding="utf-8").splitlines()]
    errors = {int(row["row"]): row["error_message"] for row in read_results(results)}
    return outcome.exit_code, outcome.output, {line["row"]: line["body"] for line in lines}, errors


def mapping_with(tmp_path: Path, formats: list[str], dob: str | None = None) -> Path:
    data = {
        "version": 1,
        "source": {"timezone": "Asia/Kolkata"},
        "lead": {"search_by": "EmailAddress", "attributes": {"EmailAddress": "email"}},
        "activity": {"event": 105, "datetime": {"column": "visited_at", "format": formats}},
    }
    if dob is not None:
        data["lead"]["attributes"]["mx_DOB"] = {"column": "dob", "date": dob}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_a_date_cell_at_midnight_passes_the_example_mappings_formats(tmp_path: Path) -> None:
    """mappings/example.yaml reads Excel date-times with '%Y-%m-%d %H:%M:%S'; a date-time at
    midnight is rendered '2023-01-24' and was invalid."""
    wb = openpyxl.Workbook()
    ws = wb.active
    header = ["first_name", "last_name", "email", "phone", "city", "kyc_status", "visited_at"]
    ws.append([*header, "amount", "product", "notes"])
    ws.append(["Asha", "Rao", "a@x.in", "", "Pune", "", dt.datetime(2023, 1, 24), "", "", ""])
    ws.append(["Ravi", "K", "r@x.in", "", "Goa", "", dt.datetime(2023, 1, 24, 9), "", "", ""])
    source = tmp_path / "leads.xlsx"
    wb.save(source)

    code, output, bodies, _ = validate_payloads(tmp_path, source, EXAMPLE_MAPPING)

    assert code == 0, output
    # Asia/Kolkata is UTC+05:30: local midnight is 18:30 the day before.
    assert bodies[2]["Activity"]["ActivityDateTime"] == "2023-01-23 18:30:00"
    assert bodies[3]["Activity"]["ActivityDateTime"] == "2023-01-24 03:30:00"


def test_typed_dates_whatever_the_formats_but_text_keeps_them(tmp_path: Path) -> None:
    source = write_xlsx(
        tmp_path / "leads.xlsx",
        [
            ["a@x.in", dt.datetime(2023, 1, 24), dt.date(1990, 5, 17)],
            ["b@x.in", dt.datetime(2023, 1, 24, 14, 30, 15), dt.datetime(1990, 5, 17, 0, 0)],
            ["c@x.in", "24/01/2023 10:00", "17/05/1990"],  # text typed in the declared formats
            ["d@x.in", "2023-01-24 10:00:00", "17/05/1990"],  # text in another format
            ["e@x.in", "24/01/2023 10:00", "1990-05-17"],  # text in another format
        ],
    )
    mapping = mapping_with(tmp_path, ["%d/%m/%Y %H:%M"], dob="%d/%m/%Y")

    code, output, bodies, errors = validate_payloads(tmp_path, source, mapping)

    assert code == 1, output
    assert sorted(bodies) == [2, 3, 4]
    sent = {row: body["Activity"]["ActivityDateTime"] for row, body in bodies.items()}
    assert sent == {2: "2023-01-23 18:30:00", 3: "2023-01-24 09:00:15", 4: "2023-01-24 04:30:00"}
    dobs = {
        row: [item["Value"] for item in body["LeadDetails"] if item["Attribute"] == "mx_DOB"]
        for row, body in bodies.items()
    }
    assert dobs == {2: ["1990-05-17"], 3: ["1990-05-17"], 4: ["1990-05-17"]}
    assert errors == {
        5: "column 'visited_at': cannot parse '2023-01-24 10:00:00' with format %d/%m/%Y %H:%M",
        6: "column 'dob': cannot parse '1990-05-17' with format %d/%m/%Y",
    }


def test_a_typed_date_in_a_csv_twin_is_text(tmp_path: Path) -> None:
    """The same ISO text in a CSV is text a person wrote: the declared formats apply."""
    source = tmp_path / "leads.csv"
    source.write_text("email,visited_at,dob\na@x.in,2023-01-24,\n", encoding="utf-8")
    code, output, bodies, errors = validate_payloads(
        tmp_path, source, mapping_with(tmp_path, ["%d/%m/%Y %H:%M"])
    )
    assert code == 1, output
    assert bodies == {}
    assert errors == {
        2: "column 'visited_at': cannot parse '2023-01-24' with format %d/%m/%Y %H:%M"
    }
