"""Transforms and value maps: what a cell becomes, and the row error when it cannot."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from importer.cli import cli
from importer.exceptions import MappingError
from importer.mapping import RowError, load_mapping

from .conftest import map_mapping, sent_attribute, with_changes

# --------------------------------------------------------------------------- value maps


def test_map_replaces_values(load):
    mapping = map_mapping(load, map={"Y": "Yes", "N": "No", 1: "Yes"})
    assert sent_attribute(mapping, opt="Y") == "Yes"
    assert sent_attribute(mapping, opt=" N ") == "No"  # the cell is trimmed first
    assert sent_attribute(mapping, opt="1") == "Yes"  # YAML integer keys are text
    assert sent_attribute(mapping, opt="") is None  # empty: omitted, the map is not asked


def test_unmapped_value_is_a_row_error_naming_column_value_and_keys(load):
    mapping = map_mapping(load, map={"Y": "Yes", "N": "No"})
    with pytest.raises(RowError) as caught:
        sent_attribute(mapping, opt="y")
    assert caught.value.column == "opt"
    assert str(caught.value) == (
        "column 'opt': 'y' is not in the map of lead.attributes.mx_Opt_In; allowed: 'Y', 'N'; "
        "add it to the map, or set unmapped: keep or empty"
    )


def test_map_case_insensitive(load):
    mapping = map_mapping(load, map={"Yes": "Y", "no": "N"}, map_case="insensitive")
    assert sent_attribute(mapping, opt="YES") == "Y"
    assert sent_attribute(mapping, opt="No") == "N"


@pytest.mark.parametrize(("unmapped", "sent"), [("keep", "Maybe"), ("empty", None)])
def test_unmapped_keep_or_empty(load, unmapped, sent):
    mapping = map_mapping(load, map={"Y": "Yes"}, unmapped=unmapped)
    assert sent_attribute(mapping, opt="Maybe") == sent
    assert sent_attribute(mapping, opt="Y") == "Yes"


def test_value_mapped_to_empty_follows_the_empty_rules(load):
    mapping = map_mapping(load, map={"Y": "Yes", "-": ""}, default="Y")  # a default is mapped too
    assert sent_attribute(mapping, opt="-") == "Yes"
    mapping = map_mapping(load, map={"Y": "Yes", "-": ""}, empty="send")
    assert sent_attribute(mapping, opt="-") == ""
    mapping = map_mapping(load, map={"Y": "Yes", "-": ""}, required=True)
    with pytest.raises(RowError, match="'-' becomes empty after its transform or map, but lead"):
        sent_attribute(mapping, opt="-")


def test_map_applies_after_transforms(load):
    mapping = map_mapping(load, transform="upper", map={"Y": "Yes", "N": "No"})
    assert sent_attribute(mapping, opt="y") == "Yes"


def test_default_is_mapped_at_load_time(load, write):
    mapping = map_mapping(load, map={"Y": "Yes", "N": "No"}, default="N")
    assert sent_attribute(mapping, opt="") == "No"
    data = with_changes(
        lead={
            "attributes": {
                "EmailAddress": "email",
                "mx_Opt_In": {"column": "opt", "map": {"Y": "Yes"}, "default": "No"},
            }
        }
    )
    with pytest.raises(MappingError, match=r"mx_Opt_In\.default: 'No' is not in the map"):
        load_mapping(write(data))


# --------------------------------------------------------------------------- transforms


@pytest.mark.parametrize(
    ("transform", "cell", "sent"),
    [
        ("lower", "A.Rao@Example.COM", "a.rao@example.com"),
        ("upper", "mh12ab1234", "MH12AB1234"),
        ("title", "asha rao", "Asha Rao"),
        ("digits", "PIN: 411 001", "411001"),
        ("strip", "x", "x"),
        (["digits", "strip"], "n/a", None),  # nothing left: empty, so omitted
        (["lower", "title"], "ASHA RAO", "Asha Rao"),  # in order
    ],
)
def test_simple_transforms(load, transform, cell, sent):
    mapping = map_mapping(load, transform=transform)
    assert sent_attribute(mapping, opt=cell) == sent


@pytest.mark.parametrize(
    ("code", "cell", "sent"),
    [
        ("91", "9845098450", "+91-9845098450"),
        ("91", "098450 98450", "+91-9845098450"),  # trunk prefix 0 dropped
        ("91", "+91 98450-98450", "+91-9845098450"),
        ("91", "(+91) 98450.98450", "+91-9845098450"),
        ("91", "919845098450", "+91-9845098450"),  # country code without '+'
        ("91", "0091 9845098450", "+91-9845098450"),  # international prefix 00
        ("91", "+1 (415) 555-0100", "+1-4155550100"),  # other codes keep their own
        ("1", "(415) 555-0100", "+1-4155550100"),
        ("1", "1-415-555-0100", "+1-4155550100"),
        ("44", "020 7946 0958", "+44-2079460958"),
        ("44", "+44 (0)20 7946 0958", "+44-2079460958"),
        ("39", "06 1234 5678", "+39-0612345678"),  # Italy keeps its leading 0
        ("91", "+353 1 234 5678", "+353-12345678"),  # three-digit country code
    ],
)
def test_phone_transform(load, code, cell, sent):
    mapping = map_mapping(load, transform={"phone": {"default_country_code": code}})
    assert sent_attribute(mapping, opt=cell) == sent


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("12345", "'12345' is not a +91 phone number: 5 digits after the country code, expected"),
        ("+44 1234", "'+44 1234' is not a phone number: too few digits (4 after"),
        ("98450 98450 ext 2", "is not a phone number: only digits, a leading +, spaces"),
        ("+0 123456789", "no country code after the +"),
        ("+44 1234 5678 9012 3456", "too many digits"),
    ],
)
def test_invalid_phone_is_a_row_error(load, cell, message):
    mapping = map_mapping(load, transform={"phone": {"default_country_code": "91"}})
    with pytest.raises(RowError, match="^column 'opt': ") as caught:
        sent_attribute(mapping, opt=cell)
    assert message in str(caught.value)


def test_phone_without_default_country_code_needs_a_plus(load):
    mapping = map_mapping(load, transform="phone")
    assert sent_attribute(mapping, opt="+91 98450 98450") == "+91-9845098450"
    with pytest.raises(RowError, match="has no country code; write it as \\+<code>"):
        sent_attribute(mapping, opt="98450 98450")


def test_phone_national_length(load):
    spec = {"phone": {"default_country_code": "44", "national_length": 10}}
    mapping = map_mapping(load, transform=spec)
    assert sent_attribute(mapping, opt="442079460958") == "+44-2079460958"
    with pytest.raises(RowError, match="expected 10"):
        sent_attribute(mapping, opt="020 7946 095")


@pytest.mark.parametrize(
    ("options", "cell", "sent"),
    [
        ({"decimals": 2}, "1,499.5", "1499.50"),
        ({"decimals": 2}, "1499.5", "1499.50"),
        ({"decimals": 2}, "1,49,999", "149999.00"),  # Indian grouping
        ({"decimals": 2}, "-0.001", "0.00"),
        ({"decimals": 2}, "2.675", "2.68"),  # half up, as on a bill
        ({"decimals": 0}, "1499.5", "1500"),
        ({}, "1,499.50", "1499.50"),  # as written, without grouping
        ({}, "+007", "7"),
        ({}, ".5", "0.5"),
        ({"decimal": ","}, "1.499,5", "1499.5"),
        ({"decimal": ",", "decimals": 2}, "1 499,5", "1499.50"),
        ({"decimal": ","}, "12,75", "12.75"),
        ({}, "1'499.5", "1499.5"),
    ],
)
def test_number_transform(load, options, cell, sent):
    mapping = map_mapping(load, transform={"number": options})
    assert sent_attribute(mapping, opt=cell) == sent


@pytest.mark.parametrize(
    ("options", "cell"),
    [
        ({}, "1,5"),
        ({}, "12,34"),
        ({}, "1.2.3"),
        ({}, "1e3"),
        ({}, "₹100"),
        ({"decimal": ","}, "1.5"),
    ],
)
def test_non_number_is_a_row_error(load, options, cell):
    mapping = map_mapping(load, transform={"number": options})
    with pytest.raises(RowError, match=f"^column 'opt': {cell!r} is not a number"):
        sent_attribute(mapping, opt=cell)


def test_decimal_comma_hint(load):
    mapping = map_mapping(load, transform={"number": {"decimals": 2}})
    with pytest.raises(RowError, match="add decimal: ',' to the number transform"):
        sent_attribute(mapping, opt="12,5")


# --------------------------------------------------------------------------- replace

EXT = {"replace": {"pattern": r"\s*(?:ext|x)\.?\s*\d+$", "with": "", "case": "insensitive"}}


@pytest.mark.parametrize(
    ("transform", "cell", "sent"),
    [
        (
            [EXT, {"phone": {"default_country_code": "1"}}],
            "(206) 977-3615 ext. 12",
            "+1-2069773615",
        ),
        ([EXT, {"phone": {"default_country_code": "1"}}], "206.977.3615 X12", "+1-2069773615"),
        ([EXT, {"phone": {"default_country_code": "1"}}], "(206) 977-3615", "+1-2069773615"),
        # groups in the replacement; the result is trimmed
        ({"replace": {"pattern": r"^(\w+), (\w+)$", "with": r"\2 \1"}}, "Rao, Asha", "Asha Rao"),
        ({"replace": {"pattern": r"(?P<n>\d+)", "with": r"#\g<n>"}}, "a 1 b 22", "a #1 b #22"),
        ({"replace": {"pattern": "n/a", "case": "insensitive"}}, "N/A", None),  # emptied: omitted
        ({"replace": {"pattern": r"\s+", "with": " "}}, "two\n  lines", "two lines"),
    ],
)
def test_replace_transform(load, transform, cell, sent):
    mapping = map_mapping(load, transform=transform)
    assert sent_attribute(mapping, opt=cell) == sent


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"with": ""}, "replace: give a pattern"),
        ({"pattern": ""}, "replace.pattern: must be a regular expression"),
        ({"pattern": "("}, "replace.pattern: '(' is not a regular expression"),
        ({"pattern": "(a+)+$"}, "replace.pattern: '(a+)+$' repeats a group"),
        ({"pattern": r"\d", "with": r"\1"}, r"replace.with: '\1' is not a replacement"),
        ({"pattern": r"\d", "with": r"\g<x>"}, r"replace.with: '\g<x>' is not a replacement"),
        ({"pattern": r"\d", "with": r"\q"}, r"replace.with: '\q' is not a replacement"),
        ({"pattern": "a", "with": "b" * 1001}, "replace.with: longer than 1,000 characters"),
        ({"pattern": "a", "case": "ignore"}, "replace.case: must be sensitive or insensitive"),
        ({"pattern": "a", "by": "b"}, "replace: unknown option 'by'; allowed: pattern, with, case"),
    ],
)
def test_bad_replace_is_a_mapping_error_naming_the_key(load, options, message):
    with pytest.raises(MappingError) as caught:
        map_mapping(load, transform={"replace": options})
    assert "lead.attributes.mx_Opt_In.transform" in str(caught.value)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_replace_on_a_cell_too_long_for_a_pattern_is_a_row_error(load):
    mapping = map_mapping(load, transform={"replace": {"pattern": "x", "with": "y"}})
    with pytest.raises(RowError) as caught:
        sent_attribute(mapping, opt="a" * 4001)
    assert caught.value.column == "opt"
    assert "4,001 characters, more than the 4,000 a regular expression is tried on" in str(
        caught.value
    )


def test_replace_cleans_us_phones_through_validate(tmp_path, write):
    """The trial's `(206) 977-3615 ext. 12`: `digits` kept the extension, `phone` refused it."""
    source = tmp_path / "contacts.csv"
    source.write_text(
        "Email,Phone\na@x.io,(206) 977-3615 ext. 12\nb@x.io,+1 206 977 3616 x7\nc@x.io,call me\n",
        encoding="utf-8",
    )
    mapping = write(
        "version: 1\n"
        "lead:\n"
        "  search_by: EmailAddress\n"
        "  attributes:\n"
        "    EmailAddress: Email\n"
        "    Phone:\n"
        "      column: Phone\n"
        "      transform:\n"
        "        - replace: {pattern: '\\s*(?:ext|x)\\.?\\s*\\d+$', case: insensitive}\n"
        '        - {phone: {default_country_code: "1"}}\n'
        "activity: {event: 105}\n"
    )
    payloads = tmp_path / "bodies.jsonl"
    outcome = CliRunner().invoke(
        cli, ["validate", str(source), "-m", str(mapping), "--payloads", str(payloads)]
    )
    assert outcome.exit_code == 1, outcome.output
    phones = [
        [item["Value"] for item in json.loads(line)["body"]["LeadDetails"]][1]
        for line in payloads.read_text(encoding="utf-8").splitlines()
    ]
    assert phones == ["+1-2069773615", "+1-2069773616"]
    assert "'call me' is not a phone number" in outcome.output
