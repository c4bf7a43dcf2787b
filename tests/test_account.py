"""A sandbox that mirrors a real account: ``run``/``validate --sandbox --schema`` rehearse a
mapping written for that account, against the sandbox's copy of its schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from importer.cli import cli

from .conftest import read_results

# An account unlike the sandbox's default one: activity types 212 and 230 only (no 105 or
# 106), a mandatory dropdown lead field and a lead custom field set of its own.
ACCOUNT_SCHEMA = """\
lead_fields:
  - {SchemaName: FirstName, DisplayName: First Name, DataType: String, MaxLength: "100"}
  - SchemaName: EmailAddress
    DisplayName: Email
    DataType: Email
    MaxLength: "100"
    IsLeadIdentifier: true
  - SchemaName: mx_Branch
    DisplayName: Branch
    DataType: Select
    IsMandatory: true
    Options: [{Value: Pune, Text: Pune}, {Value: Kochi, Text: Kochi (Kerala)}]
  - SchemaName: mx_Loan
    DisplayName: Loan
    DataType: CustomObject
    MaxLength: ""
    Fields:
      - {SchemaName: Amount, DisplayName: Amount, DataType: Number}
      - SchemaName: Tenure
        DisplayName: Tenure
        DataType: Select
        Options: [{Value: "12", Text: 12 months}, {Value: "24", Text: 24 months}]
activity_types:
  - ActivityEvent: 212
    ActivityEventName: Branch_Visit
    DisplayName: Branch Visit
    Fields:
      - {SchemaName: mx_Custom_1, DisplayName: Product, DataType: String, IsMandatory: true}
      - {SchemaName: mx_Custom_2, DisplayName: Amount, DataType: Number}
      - SchemaName: mx_Custom_5
        DisplayName: Outcome
        DataType: Dropdown
        OptionSet: [{Value: Interested, Text: Interested}, {Value: Later, Text: Later}]
  - ActivityEvent: 230
    ActivityEventName: Doorstep_Service
    DisplayName: Doorstep Service
    Fields:
      - SchemaName: mx_Custom_1
        DisplayName: Visit
        DataType: CustomObject
        Fields:
          - {SchemaName: Slot, DisplayName: Slot, DataType: Dropdown, OptionSet: [Morning]}
"""

# Written for that account: its event code and its fields, which the default sandbox has not.
ACCOUNT_MAPPING = """\
version: 1
source: {timezone: Asia/Kolkata}
lead:
  search_by: EmailAddress
  attributes:
    FirstName: first_name
    EmailAddress: email
    mx_Branch: {value: Pune}
activity:
  event: 212
  datetime: {column: visited_at, format: "%d/%m/%Y %H:%M"}
  fields:
    mx_Custom_1: product
    mx_Custom_2: {column: amount, transform: {number: {decimals: 2}}}
    mx_Custom_5: {value: Interested}
"""


@pytest.fixture
def account_files(tmp_path: Path, sample_rows) -> tuple[Path, Path, Path]:
    """(schema file, mapping for that account, 5 rows of the sample)."""
    schema = tmp_path / "account-schema.yaml"
    schema.write_text(ACCOUNT_SCHEMA, encoding="utf-8")
    mapping = tmp_path / "account-mapping.yaml"
    mapping.write_text(ACCOUNT_MAPPING, encoding="utf-8")
    return schema, mapping, sample_rows(5)


def test_run_sandbox_schema_accepts_a_mapping_the_default_sandbox_refuses(
    tmp_path: Path, account_files: tuple[Path, Path, Path]
) -> None:
    schema, mapping, rows = account_files
    runner = CliRunner()
    common = ["run", str(rows), "-m", str(mapping), "--sandbox", "--rate", "100", "--per", "1"]
    default = runner.invoke(cli, [*common, "--results", str(tmp_path / "default.csv")])
    assert default.exit_code == 2, default.output
    assert "activity.event: 212 is not an activity type" in default.output

    mirrored = runner.invoke(
        cli, [*common, "--schema", str(schema), "--results", str(tmp_path / "mirror.csv")]
    )
    assert mirrored.exit_code == 0, mirrored.output
    lines = read_results(tmp_path / "mirror.csv")
    assert [line["status"] for line in lines] == ["success"] * 5


def test_validate_sandbox_schema_checks_against_that_schema(
    account_files: tuple[Path, Path, Path],
) -> None:
    schema, mapping, rows = account_files
    runner = CliRunner()
    common = ["validate", str(rows), "-m", str(mapping), "--sandbox"]
    default = runner.invoke(cli, common)
    assert default.exit_code == 2, default.output
    assert "212 is not an activity type" in default.output

    mirrored = runner.invoke(cli, [*common, "--schema", str(schema)])
    assert mirrored.exit_code == 0, mirrored.output
    assert "activity 212 (Branch Visit) exists" in mirrored.output


@pytest.mark.parametrize("command", ["run", "validate"])
def test_schema_without_sandbox_is_refused_before_anything_is_sent(
    tmp_path: Path, account_files: tuple[Path, Path, Path], command: str
) -> None:
    schema, mapping, rows = account_files
    args = [command, str(rows), "-m", str(mapping), "--schema", str(schema)]
    if command == "validate":
        args.append("--online")
    result = CliRunner().invoke(
        cli,
        args,
        env={"LSQ_ACCESS_KEY": "u$raccess-key", "LSQ_SECRET_KEY": "secret-key-0001"},
    )
    assert result.exit_code == 2, result.output
    assert "--schema" in result.output and "applies only with --sandbox" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_bad_schema_file_is_one_line_naming_it(
    tmp_path: Path, account_files: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, mapping, rows = account_files
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad-schema.yaml"
    bad.write_text("lead_fields: []\nactivity_types: [{Fields: []}]\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        ["run", str(rows), "-m", str(mapping), "--sandbox", "--schema", str(bad)],
    )
    assert result.exit_code == 2, result.output
    assert str(bad) in result.output and "ActivityEvent" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.results.csv*"))  # refused before the run began
