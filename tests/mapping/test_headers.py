"""Column names against the file's header: exact by default, with "did you mean" for names
that differ in case, spaces and underscores; ``source.match_headers: loose`` matches those."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from importer.cli import cli
from importer.exceptions import MappingError
from importer.reader import Row

from ..conftest import read_results

EXPORT = (
    "First Name,Last Name,Email,Visited At,Lead Status\n"
    "Asha,Rao,asha@x.in,07/03/2024 14:15,Open\n"
    "Ravi,Kumar,ravi@x.in,31/02/2024 10:00,Open\n"
    "Test,User,test@x.in,07/03/2024 14:15,TEST\n"
)


def mapping_text(match_headers: str | None = None) -> str:
    source = "source:\n  timezone: Asia/Kolkata\n"
    if match_headers is not None:
        source += f"  match_headers: {match_headers}\n"
    return (
        "version: 1\n"
        f"{source}"
        "filters:\n"
        "  skip_if:\n"
        "    - {column: lead_status, equals: test, case: insensitive}\n"
        "lead:\n"
        "  search_by: EmailAddress\n"
        "  attributes:\n"
        "    EmailAddress: email\n"
        "    FirstName: first_name\n"
        '    mx_Full_Name: {template: "{first_name} {LAST_NAME} {{x}}"}\n'
        "activity:\n"
        "  event: 105\n"
        "  datetime: {column: visited_at, format: '%d/%m/%Y %H:%M'}\n"
    )


def validate(tmp_path: Path, mapping: str, export: str = EXPORT):
    source = tmp_path / "export.csv"
    source.write_text(export, encoding="utf-8")
    path = tmp_path / "m.yaml"
    path.write_text(mapping, encoding="utf-8")
    payloads, results = tmp_path / "bodies.jsonl", tmp_path / "r.csv"
    outcome = CliRunner().invoke(
        cli,
        ["validate", str(source), "-m", str(path), "--payloads", str(payloads)]
        + ["--results", str(results)],
    )
    return outcome, payloads, results


def test_exact_names_say_did_you_mean_for_every_near_header(tmp_path: Path) -> None:
    outcome, _, _ = validate(tmp_path, mapping_text())
    assert outcome.exit_code == 2, outcome.output
    message = outcome.stderr.strip()
    assert "\n" not in message
    for column, key, header in [
        ("email", "lead.attributes.EmailAddress", "Email"),
        ("first_name", "lead.attributes.FirstName", "First Name"),
        ("LAST_NAME", "lead.attributes.mx_Full_Name", "Last Name"),
        ("visited_at", "activity.datetime", "Visited At"),
        ("lead_status", "filters.skip_if[0]", "Lead Status"),
    ]:
        assert f"'{column}' ({key}; did you mean '{header}'?)" in message
    assert "lacks 5 columns" in message
    assert "or set source.match_headers: loose" in message


def test_loose_matching_reads_the_near_headers(tmp_path: Path) -> None:
    outcome, payloads, results = validate(tmp_path, mapping_text("loose"))
    assert outcome.exit_code == 1, outcome.output  # row 3's date does not exist
    bodies = [json.loads(line) for line in payloads.read_text(encoding="utf-8").splitlines()]
    assert [body["row"] for body in bodies] == [2]
    assert bodies[0]["body"]["LeadDetails"] == [
        {"Attribute": "EmailAddress", "Value": "asha@x.in"},
        {"Attribute": "FirstName", "Value": "Asha"},
        {"Attribute": "mx_Full_Name", "Value": "Asha Rao {x}"},
        {"Attribute": "SearchBy", "Value": "EmailAddress"},
    ]
    assert bodies[0]["body"]["Activity"]["ActivityDateTime"] == "2024-03-07 08:45:00"
    rows = {row["row"]: row for row in read_results(results)}
    # Messages name the file's own header, and the filter read 'Lead Status'.
    assert rows["3"]["error_message"].startswith("column 'Visited At': cannot parse")
    assert rows["4"]["status"] == "skipped"
    assert "column 'Lead Status' is 'TEST'" in rows["4"]["error_message"]


def test_loose_matching_that_is_ambiguous_is_an_error(tmp_path: Path) -> None:
    export = "First Name,first name,Email,Visited At,Lead Status\nA,B,a@x.in,,\n"
    outcome, _, _ = validate(tmp_path, mapping_text("loose"), export)
    assert outcome.exit_code == 2, outcome.output
    assert (
        "'first_name' (lead.attributes.FirstName) matches 'First Name' and 'first name' "
        "(match_headers: loose); name one of them exactly"
    ) in outcome.stderr


def test_an_exact_header_wins_over_near_ones(tmp_path: Path) -> None:
    export = "first_name,First Name,email,Last Name,visited_at,lead_status\nA,B,a@x.in,C,,\n"
    outcome, payloads, _ = validate(tmp_path, mapping_text("loose"), export)
    assert outcome.exit_code == 0, outcome.output
    body = json.loads(payloads.read_text(encoding="utf-8"))["body"]
    assert {"Attribute": "FirstName", "Value": "A"} in body["LeadDetails"]
    assert {"Attribute": "mx_Full_Name", "Value": "A C {x}"} in body["LeadDetails"]


def test_match_headers_takes_exact_or_loose(tmp_path: Path) -> None:
    outcome, _, _ = validate(tmp_path, mapping_text("fuzzy"))
    assert outcome.exit_code == 2
    assert "source.match_headers" in outcome.stderr and "'exact' or 'loose'" in outcome.stderr


def test_one_mapping_matches_each_files_header_afresh(load) -> None:
    """A batch checks one mapping against each file: a loose match of one file's header does
    not stay for the next."""
    mapping = load(
        {
            "version": 1,
            "source": {"match_headers": "loose"},
            "lead": {"search_by": "EmailAddress", "attributes": {"EmailAddress": "e_mail"}},
            "activity": {"event": 105},
        }
    )
    mapping.check_columns(["E Mail"], "a.csv")
    assert mapping.build(Row(2, {"E Mail": "a@x.in"})).key == "a@x.in"
    mapping.check_columns(["e_mail"], "b.csv")
    assert mapping.build(Row(2, {"e_mail": "b@x.in", "E Mail": "no"})).key == "b@x.in"
    with pytest.raises(MappingError, match="b.csv lacks 1 column"):
        mapping.check_columns(["mail"], "b.csv")
