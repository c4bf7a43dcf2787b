"""Preflight: a mapping that cannot work against the account stops before any row is sent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from importer.cli import cli
from importer.exceptions import FatalApiError
from importer.leadsquared.client import LeadSquaredClient, make_session
from importer.mapping import RowError, load_mapping
from importer.preflight import PreflightError, PreflightReport, preflight
from importer.sandbox import Sandbox
from importer.sending.pacer import Pacer

from .conftest import EXAMPLE_MAPPING, SAMPLE_CSV, SANDBOX_KEYS

KEYS_ENV = {"LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key, "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key}


def check(
    sandbox: Sandbox, mapping_path: Path, *, base: str | None = None, pacer_rate: int = 0
) -> tuple[PreflightReport, Pacer | None]:
    async def main() -> tuple[PreflightReport, Pacer | None]:
        pacer = Pacer(pacer_rate, 1.0) if pacer_rate else None
        async with make_session(SANDBOX_KEYS) as session:
            client = LeadSquaredClient(session, base or sandbox.base_url)
            return await preflight(client, load_mapping(mapping_path), pacer=pacer), pacer

    return asyncio.run(main())


# The sample's mapping, written here so that the replacements below keep matching.
BASE_MAPPING = """\
version: 1
source: {timezone: Asia/Kolkata}
lead:
  search_by: EmailAddress
  attributes:
    FirstName: first_name
    EmailAddress: email
    mx_City: city
    mx_KYC:
      fields:
        Status: kyc_status
activity:
  event: 105
  datetime: {column: visited_at, format: "%d/%m/%Y %H:%M"}
  fields:
    mx_Custom_1: amount
    mx_Custom_2: product
options:
  validate_dropdown_options: false
"""


def mapping_with(tmp_path: Path, *changes: tuple[str, str]) -> Path:
    text = BASE_MAPPING
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def creates(sandbox: Sandbox) -> int:
    return len(sandbox.arrivals("CreateCustom"))


def test_example_mapping_fits_the_default_schema(sandbox_thread) -> None:
    sandbox = sandbox_thread()
    report, _ = check(sandbox, EXAMPLE_MAPPING)
    assert (report.event, report.event_name) == (105, "Website Purchase")
    assert report.lead_fields_checked >= 5 and report.activity_fields_checked == 2
    assert report.calls == 3 and len(sandbox.calls) == 3
    assert {c.path.rsplit("/", 1)[-1] for c in sandbox.calls} == {
        "ActivityTypes.Get",
        "GetActivitySetting",
        "LeadsMetaData.Get",
    }
    assert report.warnings == []
    assert "activity 105 (Website Purchase)" in report.to_text()


def test_metadata_calls_take_pacer_slots(sandbox_thread) -> None:
    sandbox = sandbox_thread()
    _, pacer = check(sandbox, EXAMPLE_MAPPING, pacer_rate=10)
    assert pacer is not None and pacer.calls == 3


@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        (
            [("event: 105", "event: 999")],
            ["activity.event: 999 is not an activity type", "105 (Website Purchase)"],
        ),
        (
            [("mx_City: city", "mx_Cty: city")],
            ["lead.attributes.mx_Cty: not a lead field", "did you mean mx_City?"],
        ),
        (
            [("mx_City: city", "mx_City: city\n    ProspectStage: {value: Lead}")],
            ["lead.attributes.ProspectStage: 'Lead' is not one of the options", "Opportunity"],
        ),
        (
            [("Status: kyc_status", "Status: {column: kyc_status, map: {V: Verified, P: Pendng}}")],
            ["lead.attributes.mx_KYC.fields.Status: 'Pendng' is not one of the options"],
        ),
        (
            [("mx_Custom_2: product", "mx_Custom_9: product")],
            [
                "activity.fields.mx_Custom_9: not a field of activity 105 (Website Purchase); "
                "it has mx_Custom_1, mx_Custom_2, mx_Custom_3"
            ],
        ),
        (
            [("mx_Custom_2: product", "mx_Custom_3: {value: Boiling}")],
            ["activity.fields.mx_Custom_3: 'Boiling' is not one of the options of Interest"],
        ),
        (
            [("event: 105", "event: 106"), ("mx_Custom_1: amount\n", "")],
            ["activity 106 (Phone Call) requires mx_Custom_1 (Call Outcome)"],
        ),
        (
            [("mx_KYC:\n      fields:\n        Status: kyc_status", "mx_KYC: kyc_status")],
            ["lead.attributes.mx_KYC: is a custom field set", "Status, Document_Number"],
        ),
        (
            [("Status: kyc_status", "State: kyc_status")],
            ["lead.attributes.mx_KYC.fields.State: not a field of the custom field set mx_KYC"],
        ),
        (
            [("mx_Custom_2: product", "mx_Custom_4: {fields: {City: city, Slot: {value: Noon}}}")],
            ["activity.fields.mx_Custom_4.fields.Slot: 'Noon' is not one of the options"],
        ),
        (
            [("mx_Custom_2: product", "mx_Custom_4: {fields: {Town: city}}")],
            ["activity.fields.mx_Custom_4.fields.Town: not a field of mx_Custom_4"],
        ),
    ],
    ids=[
        "unknown-event",
        "unknown-lead-attribute",
        "bad-dropdown-constant",
        "bad-value-map-output",
        "unknown-activity-field",
        "bad-activity-dropdown-constant",
        "mandatory-activity-field",
        "cfs-as-plain-value",
        "unknown-cfs-field",
        "bad-activity-cfs-dropdown-constant",
        "unknown-activity-cfs-field",
    ],
)
def test_a_mapping_that_cannot_work_stops_before_any_create(
    sandbox_thread, tmp_path: Path, changes, needles
) -> None:
    sandbox = sandbox_thread()
    with pytest.raises(PreflightError) as caught:
        check(sandbox, mapping_with(tmp_path, *changes))
    message = str(caught.value)
    assert "\n" not in message and "m.yaml" in message and "nothing sent" in message
    for needle in needles:
        assert needle in message, message
    assert creates(sandbox) == 0
    assert 2 <= len(sandbox.calls) <= 3


def test_every_problem_is_reported_at_once(sandbox_thread, tmp_path: Path) -> None:
    sandbox = sandbox_thread()
    # An unknown event code (the placeholder 0 is refused when the mapping loads now: see
    # tests/mapping/test_load_errors.py) and an unknown lead field.
    mapping = mapping_with(
        tmp_path, ("event: 105", "event: 999"), ("mx_City: city", "mx_Town: city")
    )
    with pytest.raises(PreflightError, match="2 problems") as caught:
        check(sandbox, mapping)
    assert "activity.event: 999 is not an activity type of this account" in str(caught.value)
    assert "lead.attributes.mx_Town" in str(caught.value)


def test_skipping_dropdown_validation_skips_activity_dropdowns(
    sandbox_thread, tmp_path: Path
) -> None:
    sandbox = sandbox_thread()
    mapping = mapping_with(
        tmp_path,
        ("mx_Custom_2: product", "mx_Custom_3: {value: Boiling}"),
        ("validate_dropdown_options: false", "validate_dropdown_options: true"),
    )
    report, _ = check(sandbox, mapping)
    assert report.activity_fields_checked == 2


def test_wrong_keys_are_fatal(sandbox_thread) -> None:
    sandbox = sandbox_thread(access_key="other", secret_key="other")
    with pytest.raises(FatalApiError, match="401"):
        check(sandbox, EXAMPLE_MAPPING)
    assert 1 <= len(sandbox.calls) <= 2  # the two lookups that go out together


def test_wrong_path_is_fatal(sandbox_thread) -> None:
    sandbox = sandbox_thread()
    with pytest.raises(FatalApiError, match="404"):
        check(sandbox, EXAMPLE_MAPPING, base=sandbox.base_url + "/api")


def test_row_checker_names_the_column_and_the_options(sandbox_thread) -> None:
    sandbox = sandbox_thread()
    report, _ = check(sandbox, EXAMPLE_MAPPING)
    row_check = report.row_checker()
    assert row_check is not None
    good = {
        "LeadDetails": [
            {
                "Attribute": "mx_KYC",
                "Value": "",
                "Fields": [{"Attribute": "Status", "Value": "Verified"}],
            }
        ]
    }
    row_check(good)
    good["LeadDetails"][0]["Fields"][0]["Value"] = "Maybe"
    with pytest.raises(RowError) as caught:
        row_check(good)
    assert caught.value.column == "kyc_status"
    assert "'Maybe'" in str(caught.value) and "Pending, Verified, Rejected" in str(caught.value)


def test_validate_online_checks_each_rows_dropdown_values(sandbox_thread, tmp_path: Path) -> None:
    sandbox = sandbox_thread()
    lines = SAMPLE_CSV.read_text(encoding="utf-8-sig").splitlines()[:6]
    lines[3] = lines[3].replace(",Pending,", ",On hold,").replace(",Verified,", ",On hold,")
    assert "On hold" in lines[3]
    source = tmp_path / "leads.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    results = tmp_path / "check.csv"
    outcome = CliRunner().invoke(
        cli,
        ["validate", str(source), "-m", str(EXAMPLE_MAPPING), "--results", str(results)]
        + ["--online", "--host", sandbox.base_url],
        env=KEYS_ENV,
    )
    assert outcome.exit_code == 1, outcome.output
    assert "account check" in outcome.output and "1 invalid" in outcome.output
    assert "row 4: column 'kyc_status'" in outcome.output
    assert creates(sandbox) == 0 and len(sandbox.calls) == 3


def test_validate_online_exits_2_when_the_mapping_does_not_fit(
    sandbox_thread, tmp_path: Path
) -> None:
    sandbox = sandbox_thread()
    mapping = mapping_with(tmp_path, ("event: 105", "event: 999"))
    outcome = CliRunner().invoke(
        cli,
        ["validate", str(SAMPLE_CSV), "-m", str(mapping), "--online", "--host", sandbox.base_url],
        env=KEYS_ENV,
    )
    assert outcome.exit_code == 2, outcome.output
    assert "activity.event: 999" in outcome.stderr
    assert creates(sandbox) == 0


def test_validate_online_with_bad_keys_exits_3(sandbox_thread) -> None:
    sandbox = sandbox_thread()
    outcome = CliRunner().invoke(
        cli,
        ["validate", str(SAMPLE_CSV), "-m", str(EXAMPLE_MAPPING), "--online"]
        + ["--host", sandbox.base_url],
        env={"LSQ_ACCESS_KEY": "wrong-access-key", "LSQ_SECRET_KEY": "wrong-secret-key"},
    )
    assert outcome.exit_code == 3, outcome.output
    assert "401" in outcome.stderr


def test_a_bad_input_file_costs_no_call(sandbox_thread, tmp_path: Path) -> None:
    sandbox = sandbox_thread()
    source = tmp_path / "leads.csv"
    source.write_text("first_name,emial\nA,a@example.com\n", encoding="utf-8")
    outcome = CliRunner().invoke(
        cli,
        ["validate", str(source), "-m", str(EXAMPLE_MAPPING), "--online"]
        + ["--host", sandbox.base_url],
        env=KEYS_ENV,
    )
    assert outcome.exit_code == 2, outcome.output
    assert sandbox.calls == []


def test_validate_sandbox_flag_needs_no_keys() -> None:
    outcome = CliRunner().invoke(
        cli,
        ["validate", str(SAMPLE_CSV), "-m", str(EXAMPLE_MAPPING), "--sandbox", "--quiet"],
        env={"LSQ_ACCESS_KEY": "", "LSQ_SECRET_KEY": ""},
    )
    assert outcome.exit_code == 0, outcome.output
    assert "activity 105 (Website Purchase) exists" in outcome.output


def test_throttled_metadata_calls_wait_and_retry(sandbox_thread) -> None:
    now = [1000.0]
    sandbox = sandbox_thread(rate=2, per=5.0, clock=lambda: now[0])
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:  # time passes at the server too
        waits.append(seconds)
        now[0] += seconds

    async def main() -> PreflightReport:
        async with make_session(SANDBOX_KEYS) as session:
            client = LeadSquaredClient(session, sandbox.base_url)
            return await preflight(client, load_mapping(EXAMPLE_MAPPING), sleep=fake_sleep)

    report = asyncio.run(main())
    assert waits == [5.0]
    assert report.calls == 4
    assert [c.http_status for c in sandbox.calls] == [200, 200, 429, 200]


def test_an_unreachable_host_is_a_one_line_error_after_retries() -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> PreflightReport:
        async with make_session(SANDBOX_KEYS, timeout=5) as session:
            client = LeadSquaredClient(session, "http://127.0.0.1:9")  # discard port: refused
            return await preflight(client, load_mapping(EXAMPLE_MAPPING), sleep=fake_sleep)

    with pytest.raises(PreflightError, match="gave no answer") as caught:
        asyncio.run(main())
    assert "--host" in str(caught.value)
    # Three attempts of the activity lookup (two waits); the lead lookup that went out with it
    # may have retried too before it was cancelled.
    assert 2 <= len(waits) <= 4
