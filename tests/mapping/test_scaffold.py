"""``init-mapping``: a skeleton that loads and validates once the event code is filled in."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from importer.cli import cli
from importer.mapping import load_mapping
from importer.mapping.scaffold import guess_datetime_formats, skeleton_text

from ..conftest import SAMPLE_CSV, SAMPLE_XLSX, SANDBOX_KEYS

KEYS_ENV = {"LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key, "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key}


def invoke(*args: object, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def set_event(path: Path, code: int = 105) -> None:
    text = path.read_text(encoding="utf-8")
    assert "event: 0  # TODO" in text
    path.write_text(text.replace("event: 0  # TODO", f"event: {code}  # TODO", 1), "utf-8")


def fill_placeholders(path: Path, zone: str = "Asia/Kolkata", country: str = "91") -> None:
    """What the user does with the skeleton's TODOs: the event, the zone, the country code."""
    set_event(path)
    text = path.read_text(encoding="utf-8")
    text = text.replace("timezone: TODO", f"timezone: {zone}")
    text = text.replace("default_country_code: TODO", f'default_country_code: "{country}"')
    path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("source", [SAMPLE_CSV, SAMPLE_XLSX], ids=["csv", "xlsx"])
@pytest.mark.parametrize("online", [False, True], ids=["offline", "sandbox"])
def test_skeleton_validates_once_the_placeholders_are_set(
    tmp_path: Path, source: Path, online: bool
) -> None:
    output = tmp_path / "leads.yaml"
    extra = ["--sandbox"] if online else []
    made = invoke("init-mapping", source, "--output", output, *extra)
    assert made.exit_code == 0, made.output
    assert f"wrote {output}" in made.output
    assert (
        "next: set activity.event, source.timezone and the country code in "
        "lead.attributes.Phone.transform"
    ) in made.output

    # Left as written, the placeholders fail the check, each named, before anything is read.
    unchanged = invoke("validate", source, "--mapping", output, "--quiet", *extra)
    assert unchanged.exit_code == 2, unchanged.output
    for needle in (
        "source.timezone: TODO is init-mapping's placeholder",
        "lead.attributes.Phone.transform: phone.default_country_code: 'TODO' is init-mapping's",
        "activity.event: 0 is not an activity type code (init-mapping writes 0",
    ):
        assert needle in unchanged.stderr

    fill_placeholders(output)
    checked = invoke("validate", source, "--mapping", output, "--quiet", *extra)

    assert checked.exit_code == 0, checked.output
    assert "200 valid, 0 invalid" in checked.output
    mapping = load_mapping(output)
    columns = mapping.columns()
    for column in ("email", "first_name", "last_name", "phone", "city", "visited_at", "notes"):
        assert column in columns, column
    assert mapping.search_by == "EmailAddress"
    if online:  # the sandbox's mx_KYC custom field set has a Status field
        assert mapping.lead_cfs_fields == {"mx_KYC": ("Status",)}


def test_guesses_are_named_in_the_file(tmp_path: Path) -> None:
    output = tmp_path / "m.yaml"
    assert invoke("init-mapping", SAMPLE_CSV, "-o", output).exit_code == 0
    text = output.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert data["lead"]["attributes"]["EmailAddress"] == "email"
    assert data["lead"]["attributes"]["mx_City"] == "city"
    assert data["activity"]["event"] == 0
    assert data["activity"]["datetime"] == {"column": "visited_at", "format": ["%d/%m/%Y %H:%M"]}
    assert data["source"]["timezone"] == "TODO" and "TODO: the IANA time zone" in text
    # Phones without a country code get the phone transform, its country code to fill in.
    assert data["lead"]["attributes"]["Phone"] == {
        "column": "phone",
        "transform": [{"phone": {"default_country_code": "TODO"}}],
    }
    # Columns with no obvious field are listed for the user, not guessed.
    for column in ("amount", "product", "kyc_status"):
        assert f"# mx_{column}: {column}" in text
        assert column not in str(data)


def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    output = tmp_path / "m.yaml"
    output.write_text("mine\n", encoding="utf-8")
    refused = invoke("init-mapping", SAMPLE_CSV, "-o", output)
    assert refused.exit_code == 2, refused.output
    assert "--force" in refused.stderr and output.read_text(encoding="utf-8") == "mine\n"
    forced = invoke("init-mapping", SAMPLE_CSV, "-o", output, "--force")
    assert forced.exit_code == 0, forced.output
    assert "version: 1" in output.read_text(encoding="utf-8")


def test_default_output_is_named_after_the_input(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    made = invoke("init-mapping", SAMPLE_CSV)
    assert made.exit_code == 0, made.output
    assert (tmp_path / "leads.mapping.yaml").exists()


def test_missing_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    output = tmp_path / "m.yaml"
    made = invoke("init-mapping", tmp_path / "nope.csv", "-o", output)
    assert made.exit_code == 2, made.output
    assert not output.exists()


def test_online_needs_keys(tmp_path: Path) -> None:
    made = invoke(
        "init-mapping",
        SAMPLE_CSV,
        "-o",
        tmp_path / "m.yaml",
        "--online",
        env={"LSQ_ACCESS_KEY": "", "LSQ_SECRET_KEY": ""},
    )
    assert made.exit_code == 2, made.output
    assert "LSQ_ACCESS_KEY" in made.stderr


def test_online_against_a_standing_sandbox(sandbox_thread, tmp_path: Path) -> None:
    sandbox = sandbox_thread()
    output = tmp_path / "m.yaml"
    made = invoke(
        "init-mapping",
        SAMPLE_CSV,
        "-o",
        output,
        "--online",
        "--host",
        sandbox.base_url,
        env=KEYS_ENV,
    )
    assert made.exit_code == 0, made.output
    assert "matched to the account" in made.output
    assert "account field 'City'" in output.read_text(encoding="utf-8")
    assert [c.path.rsplit("/", 1)[-1] for c in sandbox.calls] == ["LeadsMetaData.Get"]


def test_awkward_headers_are_quoted_and_round_trip(tmp_path: Path) -> None:
    columns = ["E-mail Address", "Mobile No.", "yes", "2024", 'Say "hi"', "Full Name", "Created On"]
    samples = [
        {
            "E-mail Address": "a@example.com",
            "Mobile No.": "98450 98450",
            "yes": "y",
            "2024": "1",
            'Say "hi"': "x",
            "Full Name": "A B",
            "Created On": "2024-03-05",
        }
    ]
    text, made = skeleton_text(columns, samples, input_name="x.csv")
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    fill_placeholders(path)
    mapping = load_mapping(path)
    assert mapping.columns().keys() >= {"E-mail Address", "Mobile No.", "Full Name", "Created On"}
    assert mapping.search_by == "EmailAddress"
    assert set(made.unmapped) == {"yes", "2024", 'Say "hi"'}
    for column in ("yes", "2024"):
        assert f'"{column}"' in text  # quoted, or YAML would read a boolean or a number


def test_no_email_column_searches_by_mobile(tmp_path: Path) -> None:
    text, _ = skeleton_text(
        ["Name", "Mobile"], [{"Name": "A", "Mobile": "9845098450"}], input_name="x"
    )
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    fill_placeholders(path)  # the placeholders do not load, by design
    assert load_mapping(path).search_by == "Mobile"


def test_nothing_recognisable_still_loads_with_a_todo(tmp_path: Path) -> None:
    text, _ = skeleton_text(["foo", "bar"], [{"foo": "1", "bar": "2"}], input_name="x")
    assert "TODO: no e-mail or phone column found" in text
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    set_event(path)  # the placeholder 0 does not load, by design
    assert load_mapping(path).search_by == "EmailAddress"


def test_a_file_with_only_phone_numbers_and_amounts_has_no_date(tmp_path: Path) -> None:
    source = tmp_path / "x.csv"
    with open(source, "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows([["email", "amount"], ["a@x.io", "2500.00"], ["b@x.io", "12"]])
    output = tmp_path / "m.yaml"
    assert invoke("init-mapping", source, "-o", output).exit_code == 0
    text = output.read_text(encoding="utf-8")
    assert "datetime" not in text and "timezone" not in text


@pytest.mark.parametrize(
    ("values", "formats", "unread"),
    [
        (["27/07/2025 21:38", "01/05/2024 09:00"], ["%d/%m/%Y %H:%M"], []),
        (["2025-07-27 21:38:00", "2025-07-28"], ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d"], []),
        (["12/31/2024", "01/30/2024"], ["%m/%d/%Y"], []),
        (["05-Mar-2024", "garbage"], ["%d-%b-%Y"], ["garbage"]),
        (["Pune", "Mumbai"], [], ["Pune", "Mumbai"]),
        # US exports: 12-hour clock, month first (day 17 settles the order)
        (["3/7/2024 2:15 PM", "3/17/2024 11:05 am"], ["%m/%d/%Y %I:%M %p"], []),
        (["12/31/2024 11:59:59 PM"], ["%m/%d/%Y %I:%M:%S %p"], []),
        (["27/07/2025 9:38 PM"], ["%d/%m/%Y %I:%M %p"], []),
    ],
)
def test_guess_datetime_formats(values: list[str], formats: list[str], unread: list[str]) -> None:
    assert guess_datetime_formats(values) == (formats, unread)


def test_day_month_ambiguity_is_flagged() -> None:
    text, _ = skeleton_text(
        ["email", "visited_at"],
        [{"email": "a@x.io", "visited_at": "03/04/2024 10:00"}],
        input_name="x",
    )
    assert "TODO: check day and month order" in text


def test_help_has_an_example() -> None:
    outcome = invoke("init-mapping", "--help")
    assert outcome.exit_code == 0 and "Example" in outcome.output


US_EXPORT = [
    ["First Name", "Email", "Phone Number", "Create Date"],
    ["Asha", "asha@x.io", "(206) 977-3615 ext. 12", "3/7/2024 2:15 PM"],
    ["Ravi", "ravi@x.io", "206.977.3616", "3/17/2024 11:05 AM"],
    ["Meera", "meera@x.io", "+1 206 977 3617", "11/3/2024 1:30 AM"],
]


def write_us_export(tmp_path: Path) -> Path:
    source = tmp_path / "contacts.csv"
    with open(source, "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(US_EXPORT)
    return source


def test_a_us_export_gets_12_hour_formats_and_cleaned_phones(tmp_path: Path) -> None:
    source = write_us_export(tmp_path)
    output = tmp_path / "m.yaml"
    made = invoke(
        "init-mapping", source, "-o", output, "--timezone", "America/New_York",
        "--country-code", "1",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "next: set activity.event and review" in made.output  # nothing else to fill in
    data = yaml.safe_load(output.read_text(encoding="utf-8"))
    assert data["source"]["timezone"] == "America/New_York"
    assert data["activity"]["datetime"]["format"] == ["%m/%d/%Y %I:%M %p"]
    assert data["lead"]["attributes"]["Phone"]["transform"] == [
        {"replace": {"pattern": r"\s*(?:ext|x)\.?\s*\d+$", "case": "insensitive"}},
        {"phone": {"default_country_code": "1"}},
    ]
    set_event(output)
    payloads = tmp_path / "bodies.jsonl"
    checked = invoke("validate", source, "-m", output, "--payloads", payloads)
    assert checked.exit_code == 0, checked.output
    bodies = [json.loads(line)["body"] for line in payloads.read_text("utf-8").splitlines()]
    phones = [
        item["Value"]
        for body in bodies
        for item in body["LeadDetails"]
        if item["Attribute"] == "Phone"
    ]
    assert phones == ["+1-2069773615", "+1-2069773616", "+1-2069773617"]
    # EST is UTC-5: 2:15 PM on 7 March is 19:15 UTC; 1:30 AM on 3 November happens twice.
    sent = [body["Activity"]["ActivityDateTime"] for body in bodies]
    assert sent == ["2024-03-07 19:15:00", "2024-03-17 15:05:00", "2024-11-03 05:30:00"]


def test_international_phones_need_no_country_code(tmp_path: Path) -> None:
    text, made = skeleton_text(
        ["email", "mobile"],
        [
            {"email": "a@x.io", "mobile": "+91 98450 98450"},
            {"email": "b@x.io", "mobile": "0044 20 7946 0958"},
        ],
        input_name="x.csv",
    )
    assert yaml.safe_load(text)["lead"]["attributes"]["Mobile"] == {
        "column": "mobile",
        "transform": ["phone"],
    }
    assert made.placeholders == ["activity.event"]


def test_a_phone_column_that_holds_no_phones_gets_no_transform() -> None:
    text, _ = skeleton_text(
        ["email", "phone"],
        [{"email": "a@x.io", "phone": "ask reception"}, {"email": "b@x.io", "phone": "n/a"}],
        input_name="x.csv",
    )
    assert yaml.safe_load(text)["lead"]["attributes"]["Phone"] == "phone"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--timezone", "Eastern", "--timezone: unknown time zone 'Eastern'; use an IANA name"),
        ("--country-code", "USA", "--country-code: 'USA' is not a country calling code"),
    ],
)
def test_bad_timezone_or_country_code_exits_2_and_writes_nothing(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    output = tmp_path / "m.yaml"
    outcome = invoke("init-mapping", write_us_export(tmp_path), "-o", output, option, value)
    assert outcome.exit_code == 2, outcome.output
    assert message in outcome.stderr and "\n" not in outcome.stderr.strip()
    assert not output.exists()
