"""``init-mapping``: a skeleton that loads and validates once the event code is filled in."""

from __future__ import annotations

import csv
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


@pytest.mark.parametrize("source", [SAMPLE_CSV, SAMPLE_XLSX], ids=["csv", "xlsx"])
@pytest.mark.parametrize("online", [False, True], ids=["offline", "sandbox"])
def test_skeleton_validates_once_the_event_is_set(
    tmp_path: Path, source: Path, online: bool
) -> None:
    output = tmp_path / "leads.yaml"
    extra = ["--sandbox"] if online else []
    made = invoke("init-mapping", source, "--output", output, *extra)
    assert made.exit_code == 0, made.output
    assert f"wrote {output}" in made.output and "activity.event" in made.output
    set_event(output)

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
    assert data["source"]["timezone"] == "UTC" and "TODO: the IANA time zone" in text
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
    path.write_text(text.replace("event: 0", "event: 105"), encoding="utf-8")
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
    set_event(path)  # the placeholder 0 does not load, by design
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
