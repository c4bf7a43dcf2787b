"""A sandbox that mirrors a real account: ``run``/``validate --sandbox --schema`` rehearse a
mapping written for that account, against the sandbox's copy of its schema."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses
from click.testing import CliRunner, Result

from importer.account import AccountError, AccountSchema, fetch_account
from importer.cli import cli
from importer.exceptions import FatalApiError
from importer.leadsquared.client import (
    ACTIVITY_SETTING_PATH,
    ACTIVITY_TYPES_PATH,
    LEAD_METADATA_PATH,
    LeadSquaredClient,
    make_session,
)
from importer.sandbox import Sandbox, SandboxSchema
from importer.sending.pacer import Pacer
from importer.settings import Credentials

from .conftest import SANDBOX_KEYS, read_results

KEYS_ENV = {"LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key, "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key}

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


# --------------------------------------------------------------------------------------------
# lsq-import account: the account read back from a standing sandbox that mirrors ACCOUNT_SCHEMA


@pytest.fixture
def mirrored(tmp_path: Path, sandbox_thread) -> Sandbox:
    """A standing sandbox with ACCOUNT_SCHEMA, at a scaled limit of 2 calls per 0.5 s."""
    path = tmp_path / "served-schema.yaml"
    path.write_text(ACCOUNT_SCHEMA, encoding="utf-8")
    return sandbox_thread(rate=2, per=0.5, schema=SandboxSchema.from_file(path))


def account(sandbox: Sandbox, *args: str, keys: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        cli,
        ["account", "--host", sandbox.base_url, "--rate", "2", "--per", "0.5", *args],
        env=KEYS_ENV if keys is None else keys,
    )


def metadata_calls(sandbox: Sandbox) -> list[str]:
    return [call.path.rsplit("/", 1)[-1] for call in sandbox.calls]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_account_output_reproduces_the_schema_of_the_account(
    tmp_path: Path, mirrored: Sandbox, suffix: str
) -> None:
    out = tmp_path / f"account-schema{suffix}"
    out.write_text("an older copy, replaced whole\n", encoding="utf-8")
    kept = account(mirrored, "--output", str(out))
    assert kept.exit_code == 2 and "exists; pass --force" in kept.output  # it may be a mapping
    assert out.read_text(encoding="utf-8") == "an older copy, replaced whole\n"
    result = account(mirrored, "--output", str(out), "--force")
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 2 activity types, 4 lead fields" in result.output
    assert SandboxSchema.from_file(out) == mirrored.schema
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name, "served-schema.yaml"]
    # One listing, one GetActivitySetting per type, one LeadsMetaData: each paced, none refused.
    assert sorted(metadata_calls(mirrored)) == sorted(
        ["ActivityTypes.Get", "GetActivitySetting", "GetActivitySetting", "LeadsMetaData.Get"]
    )
    assert {call.http_status for call in mirrored.calls} == {200}
    assert mirrored.max_in_window() <= 2


def test_the_mirrored_schema_rehearses_a_mapping_the_default_sandbox_refuses(
    tmp_path: Path, mirrored: Sandbox, account_files: tuple[Path, Path, Path]
) -> None:
    _, mapping, rows = account_files
    out = tmp_path / "mirror.yaml"
    assert account(mirrored, "--output", str(out), "--force").exit_code == 0
    runner = CliRunner()
    common = ["run", str(rows), "-m", str(mapping), "--sandbox", "--rate", "100", "--per", "1"]
    refused = runner.invoke(cli, [*common, "--results", str(tmp_path / "default.csv")])
    assert refused.exit_code == 2, refused.output
    rehearsed = runner.invoke(
        cli, [*common, "--schema", str(out), "--results", str(tmp_path / "rehearsal.csv")]
    )
    assert rehearsed.exit_code == 0, rehearsed.output
    assert {line["status"] for line in read_results(tmp_path / "rehearsal.csv")} == {"success"}
    assert mirrored.activities == []  # the rehearsal went to its own throwaway sandbox


def test_account_lists_activity_types_and_lead_fields(mirrored: Sandbox) -> None:
    result = account(mirrored)
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert ["212", "Branch", "Visit", "(Branch_Visit)"] in lines
    assert ["230", "Doorstep", "Service", "(Doorstep_Service)"] in lines
    branch = next(line for line in result.output.splitlines() if "mx_Branch" in line)
    assert branch.split()[:4] == ["mx_Branch", "Branch", "Select", "mandatory;"]
    assert 'options: Pune, Kochi ("Kochi (Kerala)")' in branch
    assert "mx_Loan.Tenure" in result.output and "lead identifier" in result.output
    # Codes, names and lead fields only: no GetActivitySetting call.
    assert sorted(metadata_calls(mirrored)) == ["ActivityTypes.Get", "LeadsMetaData.Get"]


def test_account_event_lists_the_fields_of_that_type(mirrored: Sandbox) -> None:
    result = account(mirrored, "--event", "212")
    assert result.exit_code == 0, result.output
    assert "Activity 212 Branch Visit (Branch_Visit): 3 fields" in result.output
    product = next(line for line in result.output.splitlines() if "mx_Custom_1" in line)
    assert product.split() == ["mx_Custom_1", "Product", "String", "mandatory"]
    assert "options: Interested, Later" in result.output
    assert "Doorstep" not in result.output and "mx_Branch" not in result.output
    assert metadata_calls(mirrored) == ["ActivityTypes.Get", "GetActivitySetting"]


def test_account_output_with_event_mirrors_only_that_type(
    tmp_path: Path, mirrored: Sandbox
) -> None:
    out = tmp_path / "only-230.yaml"
    result = account(mirrored, "--output", str(out), "--event", "230")
    assert result.exit_code == 0, result.output
    schema = SandboxSchema.from_file(out)
    assert [t["ActivityEvent"] for t in schema.activity_types] == [230]
    assert schema.activity_types == [
        t for t in mirrored.schema.activity_types if t["ActivityEvent"] == 230
    ]
    assert schema.lead_fields == mirrored.schema.lead_fields


@pytest.mark.parametrize(
    ("args", "keys", "code", "says"),
    [
        ([], {**KEYS_ENV, "LSQ_SECRET_KEY": "not-the-secret"}, 3, "refused the keys"),
        (["--event", "105"], None, 2, "--event 105: not an activity type"),
        (["--host", "http://127.0.0.1:9"], None, 2, "gave no answer"),
    ],
    ids=["401", "unknown-event", "unreachable"],
)
def test_account_errors_are_one_line_with_the_run_exit_codes(
    tmp_path: Path,
    mirrored: Sandbox,
    args: list[str],
    keys: dict[str, str] | None,
    code: int,
    says: str,
) -> None:
    out = tmp_path / "never.yaml"
    result = account(mirrored, "--output", str(out), *args, keys=keys)
    assert result.exit_code == code, result.output
    assert says in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()
    for secret in (*KEYS_ENV.values(), "not-the-secret"):
        assert secret not in result.output


def test_account_on_a_wrong_path_is_exit_3(mirrored: Sandbox) -> None:
    result = CliRunner().invoke(
        cli, ["account", "--host", mirrored.base_url + "/wrong"], env=KEYS_ENV
    )
    assert result.exit_code == 3, result.output
    assert "answered HTTP 404" in result.output and "check --host" in result.output


def test_account_keys_are_never_an_option() -> None:
    result = CliRunner().invoke(cli, ["account", "--access-key", "x"])
    assert result.exit_code == 2 and "No such option" in result.output


# --------------------------------------------------------------------------------------------
# The read calls against mocked answers (aioresponses): what is asked, and what is kept

BASE = "https://api-in21.leadsquared.com"
CREDS = Credentials("u$rACCESS-0001", "SECRET-0002")


def fetch_mocked(mock: Callable[[aioresponses], None], **kwargs: Any) -> tuple[Any, aioresponses]:
    async def go() -> Any:
        async with make_session(CREDS) as session:
            client = LeadSquaredClient(session, BASE, credentials=CREDS)
            return await fetch_account(client, pacer=Pacer(10, 1.0), sleep=no_sleep, **kwargs)

    async def no_sleep(seconds: float) -> None:
        return None

    with aioresponses() as mocked:
        mock(mocked)
        try:
            return asyncio.run(go()), mocked
        except Exception as exc:  # handed to the test, with what was asked
            return exc, mocked


def requested(mocked: aioresponses) -> list[str]:
    return sorted(
        f"{method} {url.path}{'?' + url.query_string if url.query_string else ''}"
        for (method, url), calls in mocked.requests.items()
        for _ in calls
    )


def test_fetch_account_asks_each_endpoint_and_keeps_what_a_schema_can_hold() -> None:
    def mock(m: aioresponses) -> None:
        m.get(
            BASE + ACTIVITY_TYPES_PATH,
            payload=[
                {"ActivityEvent": 212, "ActivityEventName": "Branch_Visit", "DisplayName": "BV"},
                {"ActivityEvent": "213", "ActivityEventName": "Call", "DisplayName": "Call"},
                {"ActivityEventName": "no code"},
            ],
        )
        m.get(
            BASE + ACTIVITY_SETTING_PATH + "?code=212",
            status=429,
            payload={"Status": "Error", "ExceptionType": "MXAPIRateLimitExceededException"},
        )
        m.get(
            BASE + ACTIVITY_SETTING_PATH + "?code=212",
            payload={
                "Name": "Branch_Visit",
                "DisplayName": "BV",
                "Fields": [
                    {"SchemaName": "mx_Custom_1", "DataType": "String", "IsMandatory": True},
                    {"DisplayName": "no schema name"},
                    {"SchemaName": "mx_Custom_1", "DataType": "Number"},
                ],
            },
        )
        m.get(
            BASE + ACTIVITY_SETTING_PATH + "?code=213",
            status=500,
            payload={
                "Status": "Error",
                "ExceptionType": "MXInvalidInputException",
                "ExceptionMessage": "not a custom activity",
            },
        )
        m.get(
            BASE + LEAD_METADATA_PATH,
            payload=[
                {
                    "SchemaName": "mx_Branch",
                    "DataType": "Select",
                    "MaxLength": "n/a",
                    "Options": [{"Value": "Pune", "Text": "Pune"}, {"Text": "no value"}],
                    "RenderType": 4,  # kept as the account gave it: the sandbox serves it back
                }
            ],
        )

    found, mocked = fetch_mocked(mock)
    assert isinstance(found, AccountSchema), found
    assert requested(mocked) == [
        "GET /v2/LeadManagement.svc/LeadsMetaData.Get",
        "GET /v2/ProspectActivity.svc/ActivityTypes.Get",
        "GET /v2/ProspectActivity.svc/CustomActivity/GetActivitySetting?code=212",
        "GET /v2/ProspectActivity.svc/CustomActivity/GetActivitySetting?code=212",  # 429: again
        "GET /v2/ProspectActivity.svc/CustomActivity/GetActivitySetting?code=213",
    ]
    for (_, url), calls in mocked.requests.items():  # keys in headers, never in the URL
        assert "SECRET" not in str(url)
        assert calls[0].kwargs["headers"]["x-LSQ-SecretKey"] == CREDS.secret_key
    assert found.calls == 5
    assert found.activity_types == [
        {
            "ActivityEvent": 212,
            "ActivityEventName": "Branch_Visit",
            "DisplayName": "BV",
            "Fields": [{"SchemaName": "mx_Custom_1", "DataType": "String", "IsMandatory": True}],
        },
        {"ActivityEvent": 213, "ActivityEventName": "Call", "DisplayName": "Call", "Fields": []},
    ]
    assert found.lead_fields == [
        {
            "SchemaName": "mx_Branch",
            "DataType": "Select",
            "Options": [{"Value": "Pune", "Text": "Pune"}],
            "RenderType": 4,
        }
    ]
    warnings = "\n".join(found.warnings)
    assert "item 2 has no integer ActivityEvent" in warnings
    assert "activity type 212: field 1 has no SchemaName" in warnings
    assert "mx_Custom_1 is listed twice" in warnings
    assert "fields of activity type 213 could not be read" in warnings
    assert "not a custom activity" in warnings
    assert "MaxLength 'n/a' is not a number" in warnings
    assert "mx_Branch has options without a text Value" in warnings
    # What it makes loads as a sandbox schema.
    assert [t["ActivityEvent"] for t in found.to_schema().activity_types] == [212, 213]


def test_fetch_account_refused_keys_raise_fatal() -> None:
    def mock(m: aioresponses) -> None:
        m.get(
            BASE + ACTIVITY_TYPES_PATH,
            status=401,
            payload={"Status": "Error", "ExceptionType": "MXUnAuthorizedAccessException"},
        )
        m.get(BASE + LEAD_METADATA_PATH, status=401, payload={"Status": "Error"})

    found, _ = fetch_mocked(mock)
    assert isinstance(found, FatalApiError) and "refused the keys" in str(found)


def test_fetch_account_unreadable_types_are_an_account_error() -> None:
    def mock(m: aioresponses) -> None:
        m.get(BASE + ACTIVITY_TYPES_PATH, payload={"not": "a list"})

    found, _ = fetch_mocked(mock, lead_fields=False)
    assert isinstance(found, AccountError)
    assert "did not answer with a list of activity types" in str(found)
