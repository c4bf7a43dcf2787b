"""Tests for importer.mapping: mapping files -> CreateCustom bodies, and their error messages."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from importer.exceptions import MappingError
from importer.mapping import Mapping, Payload, RowError, RowSkipped, load_mapping
from importer.mapping.dates import fast_parser
from importer.reader import Row

EXAMPLE = Path(__file__).resolve().parent.parent / "mappings" / "example.yaml"

# The request body from the API fact sheet (/work/shared/leadsquared-api.md), verbatim.
FACT_SHEET_BODY = (
    '{"LeadDetails": [{"Attribute": "EmailAddress", "Value": "a@example.com"}, '
    '{"Attribute": "mx_City", "Value": "Pune"}, '
    '{"Attribute": "mx_KYC", "Value": "", '
    '"Fields": [{"Attribute": "Status", "Value": "Pending"}]}, '
    '{"Attribute": "SearchBy", "Value": "EmailAddress"}], '
    '"Activity": {"ActivityEvent": 105, "ActivityNote": "text", '
    '"ActivityDateTime": "2024-05-01 09:30:00", '
    '"Fields": [{"SchemaName": "mx_Custom_1", "Value": "123"}]}}'
)

FACT_SHEET_MAPPING = """\
version: 1
source:
  timezone: Asia/Kolkata
lead:
  search_by: EmailAddress
  attributes:
    EmailAddress: email
    mx_City: {column: city}
    mx_KYC:
      fields:
        Status: {column: kyc_status}
activity:
  event: 105
  note: {column: notes}
  datetime: {column: visited_at, format: "%d/%m/%Y %H:%M"}
  fields:
    mx_Custom_1: amount
"""


def base_mapping() -> dict[str, Any]:
    """A small valid mapping as data, for tests to change one thing in."""
    return {
        "version": 1,
        "source": {"timezone": "Asia/Kolkata"},
        "lead": {
            "search_by": "EmailAddress",
            "attributes": {"EmailAddress": "email", "mx_City": {"column": "city"}},
        },
        "activity": {"event": 105},
    }


@pytest.fixture
def write(tmp_path: Path):
    def write(content: str | dict[str, Any], name: str = "m.yaml") -> Path:
        path = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def load(write):
    def load(content: str | dict[str, Any]) -> Mapping:
        return load_mapping(write(content))

    return load


def with_changes(**sections: Any) -> dict[str, Any]:
    """base_mapping() with some sections' keys replaced (one level deep)."""
    data = base_mapping()
    for section, changes in sections.items():
        if isinstance(changes, dict) and isinstance(data.get(section), dict):
            data[section].update(changes)
        else:
            data[section] = changes
    return data


def build(mapping: Mapping, number: int = 2, **values: str) -> Payload:
    return mapping.build(Row(number=number, values=values))


# --------------------------------------------------------------------------- the fact sheet


def test_fact_sheet_sample_request_is_rebuilt_exactly(load):
    mapping = load(FACT_SHEET_MAPPING)
    row = Row(
        number=7,
        values={
            "email": "a@example.com",
            "city": "Pune",
            "kyc_status": "Pending",
            "notes": "text",
            "visited_at": "01/05/2024 15:00",  # 15:00 in Asia/Kolkata is 09:30 UTC
            "amount": "123",
        },
    )
    payload = mapping.build(row)
    assert json.dumps(payload.body) == FACT_SHEET_BODY
    assert payload.row == 7
    assert payload.key == "a@example.com"


# --------------------------------------------------------------------------- values


def test_shorthand_column_is_stripped(load):
    mapping = load(base_mapping())
    body = build(mapping, email="  a@example.com\t", city=" Pune ").body
    assert body["LeadDetails"][:2] == [
        {"Attribute": "EmailAddress", "Value": "a@example.com"},
        {"Attribute": "mx_City", "Value": "Pune"},
    ]


def test_constant_value(load):
    attributes = {"EmailAddress": "email", "Source": {"value": "Spring fair 2024"}}
    mapping = load(with_changes(lead={"attributes": attributes}))
    assert build(mapping, email="a@x.io").body["LeadDetails"][1] == {
        "Attribute": "Source",
        "Value": "Spring fair 2024",
    }


def test_constant_integer_is_sent_as_text(load):
    attributes = {"EmailAddress": "email", "mx_Score": {"value": 5}}
    mapping = load(with_changes(lead={"attributes": attributes}))
    assert build(mapping, email="a@x.io").body["LeadDetails"][1]["Value"] == "5"


def test_template_with_spaces_in_column_names_and_escaped_braces(load):
    attributes = {
        "EmailAddress": "email",
        "mx_Full_Name": {"template": "{first name} {last name} {{vip}}"},
    }
    mapping = load(with_changes(lead={"attributes": attributes}))
    entry = build(mapping, email="a@x.io", **{"first name": " Asha ", "last name": "Rao"})
    assert entry.body["LeadDetails"][1] == {"Attribute": "mx_Full_Name", "Value": "Asha Rao {vip}"}
    assert mapping.columns()["first name"] == "lead.attributes.mx_Full_Name"


def test_template_result_is_stripped_when_a_column_is_empty(load):
    mapping = load(with_changes(activity={"note": {"template": "Visited {city}. {notes}"}}))
    activity = build(mapping, email="a@x.io", city="Pune", notes="").body["Activity"]
    assert activity["ActivityNote"] == "Visited Pune."


def test_template_with_all_columns_empty_is_empty_so_omitted(load):
    mapping = load(with_changes(activity={"note": {"template": "Visited {city}. {notes}"}}))
    assert "ActivityNote" not in build(mapping, email="a@x.io", city="", notes="").body["Activity"]


def test_template_without_columns_is_a_constant(load):
    mapping = load(with_changes(activity={"note": {"template": "fixed {{text}}"}}))
    assert build(mapping, email="a@x.io").body["Activity"]["ActivityNote"] == "fixed {text}"


def test_default_is_used_when_empty(load):
    attributes = {"EmailAddress": "email", "mx_City": {"column": "city", "default": "Unknown"}}
    mapping = load(with_changes(lead={"attributes": attributes}))
    assert build(mapping, email="a@x.io", city=" ").body["LeadDetails"][1]["Value"] == "Unknown"
    assert build(mapping, email="a@x.io", city="Pune").body["LeadDetails"][1]["Value"] == "Pune"


def test_empty_value_is_omitted_by_default(load):
    mapping = load(base_mapping())
    details = build(mapping, email="a@x.io", city="").body["LeadDetails"]
    assert [item["Attribute"] for item in details] == ["EmailAddress", "SearchBy"]


def test_empty_send_sends_blank_to_clear_the_field(load):
    attributes = {"EmailAddress": "email", "mx_City": {"column": "city", "empty": "send"}}
    mapping = load(with_changes(lead={"attributes": attributes}))
    assert build(mapping, email="a@x.io", city="").body["LeadDetails"][1] == {
        "Attribute": "mx_City",
        "Value": "",
    }


def test_required_empty_column_is_a_row_error_naming_the_column(load):
    attributes = {"EmailAddress": "email", "mx_City": {"column": "city", "required": True}}
    mapping = load(with_changes(lead={"attributes": attributes}))
    with pytest.raises(RowError) as caught:
        build(mapping, email="a@x.io", city="")
    assert caught.value.column == "city"
    assert str(caught.value).startswith("column 'city': ")
    assert "lead.attributes.mx_City" in str(caught.value)


def test_required_template_names_its_columns(load):
    note = {"template": "{city} {notes}", "required": True}
    mapping = load(with_changes(activity={"note": note}))
    with pytest.raises(
        RowError, match=r"activity\.note needs a value, but columns 'city', 'notes' are all empty"
    ):
        build(mapping, email="a@x.io", city="", notes="")


def test_missing_column_in_row_reads_as_empty(load):
    mapping = load(base_mapping())
    assert len(build(mapping, email="a@x.io").body["LeadDetails"]) == 2


# --------------------------------------------------------------------------- search_by and key


def test_empty_search_by_value_is_a_row_error(load):
    mapping = load(base_mapping())
    with pytest.raises(RowError) as caught:
        build(mapping, email="  ", city="Pune")
    assert caught.value.column == "email"
    assert "it is the SearchBy attribute (EmailAddress)" in str(caught.value)


def test_search_by_attribute_keeps_its_place_and_search_by_entry_comes_last(load):
    attributes = {"FirstName": "first", "Phone": "phone", "mx_City": "city"}
    mapping = load(with_changes(lead={"search_by": "Phone", "attributes": attributes}))
    details = build(mapping, first="Asha", phone="+91 98765", city="Pune").body["LeadDetails"]
    assert details == [
        {"Attribute": "FirstName", "Value": "Asha"},
        {"Attribute": "Phone", "Value": "+91 98765"},
        {"Attribute": "mx_City", "Value": "Pune"},
        {"Attribute": "SearchBy", "Value": "Phone"},
    ]


@pytest.mark.parametrize(
    ("search_by", "value", "key"),
    [
        ("EmailAddress", "A.Rao@Example.COM", "a.rao@example.com"),
        ("Phone", "+91-98765 43210", "919876543210"),
        ("Mobile", "(987) 654-3210", "9876543210"),
        ("Mobile", "n/a", "n/a"),
        ("mx_Customer_Code", "AbC-1", "AbC-1"),
    ],
)
def test_payload_key_is_the_normalised_search_by_value(load, search_by, value, key):
    mapping = load(with_changes(lead={"search_by": search_by, "attributes": {search_by: "id"}}))
    payload = build(mapping, id=value)
    assert payload.key == key
    assert payload.body["LeadDetails"][0]["Value"] == value  # sent as written


# --------------------------------------------------------------------------- field sets, activity


def test_custom_field_set_with_all_fields_empty_is_omitted(load):
    attributes = {
        "EmailAddress": "email",
        "mx_KYC": {"fields": {"Status": "kyc_status", "Level": {"column": "level"}}},
    }
    mapping = load(with_changes(lead={"attributes": attributes}))
    details = build(mapping, email="a@x.io", kyc_status="", level="").body["LeadDetails"]
    assert [item["Attribute"] for item in details] == ["EmailAddress", "SearchBy"]
    details = build(mapping, email="a@x.io", kyc_status="", level="2").body["LeadDetails"]
    assert details[1] == {
        "Attribute": "mx_KYC",
        "Value": "",
        "Fields": [{"Attribute": "Level", "Value": "2"}],
    }


def test_activity_has_only_the_event_when_nothing_else_has_a_value(load):
    activity = {
        "event": 105,
        "note": "notes",
        "datetime": {"column": "at", "format": "%Y-%m-%d"},
        "fields": {"mx_Custom_1": "amount"},
    }
    mapping = load(with_changes(activity=activity))
    body = build(mapping, email="a@x.io", notes="", at="", amount="").body
    assert json.dumps(body["Activity"]) == '{"ActivityEvent": 105}'


def test_activity_key_order(load):
    activity = {
        "fields": {"mx_Custom_1": "amount", "mx_Custom_2": {"value": "web"}},
        "datetime": {"column": "at", "format": "%Y-%m-%d %H:%M:%S", "timezone": "UTC"},
        "note": "notes",
        "event": 200,
    }
    mapping = load(with_changes(activity=activity))
    body = build(mapping, email="a@x.io", notes="hi", at="2024-01-02 03:04:05", amount="9").body
    assert list(body) == ["LeadDetails", "Activity"]
    assert list(body["Activity"]) == ["ActivityEvent", "ActivityNote", "ActivityDateTime", "Fields"]
    assert body["Activity"]["Fields"] == [
        {"SchemaName": "mx_Custom_1", "Value": "9"},
        {"SchemaName": "mx_Custom_2", "Value": "web"},
    ]


@pytest.mark.parametrize("flag", [True, False])
def test_validate_dropdown_options(load, flag):
    mapping = load(with_changes(options={"validate_dropdown_options": flag}))
    body = build(mapping, email="a@x.io").body
    if flag:
        assert list(body) == ["LeadDetails", "Activity", "ValidateDropDownOptions"]
        assert body["ValidateDropDownOptions"] is True
    else:
        assert "ValidateDropDownOptions" not in body


def test_bodies_do_not_share_objects(load):
    mapping = load(base_mapping())
    first = build(mapping, email="a@x.io", city="Pune").body
    first["LeadDetails"][-1]["Value"] = "changed"
    first["Activity"]["ActivityEvent"] = 0
    second = build(mapping, email="a@x.io", city="Pune").body
    assert second["LeadDetails"][-1]["Value"] == "EmailAddress"
    assert second["Activity"]["ActivityEvent"] == 105


# --------------------------------------------------------------------------- date-times


def datetime_mapping(load, zone: str, *formats: str, field_zone: str | None = None) -> Mapping:
    spec: dict[str, Any] = {"column": "at", "format": list(formats)}
    if field_zone:
        spec["timezone"] = field_zone
    return load(with_changes(source={"timezone": zone}, activity={"datetime": spec}))


def sent_time(mapping: Mapping, text: str) -> str:
    return build(mapping, email="a@x.io", at=text).body["Activity"]["ActivityDateTime"]


def test_datetime_formats_are_tried_in_order(load):
    mapping = datetime_mapping(load, "Asia/Kolkata", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S")
    assert sent_time(mapping, "01/05/2024 15:00") == "2024-05-01 09:30:00"
    assert sent_time(mapping, "2024-05-01 15:00:00") == "2024-05-01 09:30:00"
    assert sent_time(mapping, "02/05/2024 01:00") == "2024-05-01 19:30:00"


def test_field_timezone_overrides_source_timezone(load):
    mapping = datetime_mapping(load, "Asia/Kolkata", "%Y-%m-%d %H:%M", field_zone="Europe/London")
    assert sent_time(mapping, "2024-07-01 12:00") == "2024-07-01 11:00:00"


def test_unparsable_datetime_is_a_row_error_quoting_value_and_format(load):
    mapping = load(
        with_changes(activity={"datetime": {"column": "visited_at", "format": "%d/%m/%Y %H:%M"}})
    )
    with pytest.raises(RowError) as caught:
        build(mapping, email="a@x.io", visited_at="31/02/2024 10:00")
    assert (
        str(caught.value)
        == "column 'visited_at': cannot parse '31/02/2024 10:00' with format %d/%m/%Y %H:%M"
    )
    assert caught.value.column == "visited_at"


def test_unparsable_datetime_lists_every_format(load):
    mapping = datetime_mapping(load, "UTC", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S")
    with pytest.raises(RowError, match="with any of the formats %d/%m/%Y %H:%M, %Y-%m-%d %H:%M:%S"):
        sent_time(mapping, "tomorrow")


def test_datetime_default_is_parsed_too(load):
    spec = {"column": "at", "format": "%Y-%m-%d", "default": "2024-01-01"}
    mapping = load(with_changes(source={"timezone": "UTC"}, activity={"datetime": spec}))
    assert sent_time(mapping, "") == "2024-01-01 00:00:00"


def test_datetime_with_offset_in_the_text_keeps_that_offset(load):
    mapping = datetime_mapping(load, "Asia/Kolkata", "%Y-%m-%dT%H:%M:%S%z")
    assert sent_time(mapping, "2024-05-01T15:00:00+0200") == "2024-05-01 13:00:00"


@pytest.mark.parametrize(
    ("local", "utc"),
    [
        ("2024-03-09 12:00", "2024-03-09 17:00:00"),  # EST, -5
        ("2024-03-10 01:59", "2024-03-10 06:59:00"),  # last minute of EST
        ("2024-03-10 02:30", "2024-03-10 07:30:00"),  # in the gap: read with the EST offset
        ("2024-03-10 03:00", "2024-03-10 07:00:00"),  # EDT, -4
        ("2024-03-11 12:00", "2024-03-11 16:00:00"),
        ("2024-11-03 00:30", "2024-11-03 04:30:00"),  # EDT
        ("2024-11-03 01:30", "2024-11-03 05:30:00"),  # happens twice: the first (EDT) one
        ("2024-11-03 02:00", "2024-11-03 07:00:00"),  # EST
        ("2024-11-04 12:00", "2024-11-04 17:00:00"),
    ],
)
def test_dst_transitions_in_new_york(load, local, utc):
    mapping = datetime_mapping(load, "America/New_York", "%Y-%m-%d %H:%M")
    assert sent_time(mapping, local) == utc


@pytest.mark.parametrize(
    "zone",
    [
        "Asia/Kolkata",
        "America/New_York",
        "America/Havana",  # its clocks jump at midnight: 2024-03-10 00:00 does not exist
        "Pacific/Kiritimati",  # UTC+14
        "Pacific/Pago_Pago",  # UTC-11
        "UTC",
    ],
)
@pytest.mark.parametrize("day", ["2024-01-01", "2024-03-10", "2024-11-03", "2024-12-31"])
def test_date_only_values_never_shift_a_day(load, zone, day):
    """A date is local midnight: sent in UTC, it is still that date in the file's zone."""
    mapping = datetime_mapping(load, zone, "%Y-%m-%d")
    sent = datetime.strptime(sent_time(mapping, day), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    local = sent.astimezone(ZoneInfo(zone))
    assert local.date() == date.fromisoformat(day)
    assert local.hour <= 1  # midnight, or 01:00 where midnight was skipped


@pytest.mark.parametrize(
    "fmt", ["%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y %H.%M"]
)
@pytest.mark.parametrize(
    "text",
    [
        "01/05/2024 15:00",
        "1/5/2024 3:07",
        " 1/05/2024 15:00",
        "01/05/2024   15:00",
        "01/05/2024\t15:00",
        "31/02/2024 10:00",
        "12/31/2024",
        "01/05/2024 15:00:00",
        "2024-05-01 15:00:00",
        "2024-05-01",
        "2024-5-1",
        "2024-05-01 24:00:00",
        "2024-05-01 23:59:60",
        "01.05.2024 15.00",
        "",
        "x",
    ],
)
def test_fast_parser_agrees_with_strptime(fmt, text):
    try:
        expected: datetime | None = datetime.strptime(text, fmt)
    except ValueError:
        expected = None
    parser = fast_parser(fmt)
    assert parser is not None
    assert parser(text) == expected


def test_formats_with_names_use_strptime(load):
    mapping = datetime_mapping(load, "UTC", "%d %b %Y %I:%M %p")
    assert sent_time(mapping, "01 May 2024 03:00 PM") == "2024-05-01 15:00:00"


# --------------------------------------------------------------------------- columns


def test_columns_maps_each_column_to_the_first_key_using_it(load):
    data = with_changes(
        activity={
            "note": {"template": "{city}: {notes}"},
            "datetime": {"column": "at", "format": "%Y-%m-%d"},
            "fields": {"mx_Custom_1": "amount"},
        }
    )
    data["lead"]["attributes"]["mx_KYC"] = {"fields": {"Status": "kyc"}}
    assert load(data).columns() == {
        "email": "lead.attributes.EmailAddress",
        "city": "lead.attributes.mx_City",
        "kyc": "lead.attributes.mx_KYC.fields.Status",
        "notes": "activity.note",
        "at": "activity.datetime",
        "amount": "activity.fields.mx_Custom_1",
    }


def test_check_columns_lists_every_missing_column_in_one_line(load):
    mapping = load(with_changes(activity={"note": "Notes", "fields": {"mx_Custom_1": "amount"}}))
    with pytest.raises(MappingError) as caught:
        mapping.check_columns(["email", "notes", "phone"], "leads.csv")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{mapping.path}: leads.csv lacks 3 columns")
    assert "'city' (lead.attributes.mx_City)" in message
    assert "'Notes' (activity.note; did you mean 'notes'?)" in message
    assert "'amount' (activity.fields.mx_Custom_1)" in message
    assert "the file has: email, notes, phone" in message


def test_check_columns_passes_when_all_are_there(load):
    load(base_mapping()).check_columns(["city", "email", "extra"], "leads.csv")


# --------------------------------------------------------------------------- reader row errors


def flagged_row(number: int, error: str, **values: str) -> Row:
    return Row(number=number, values=values, error=error)


def test_reader_row_error_is_raised_before_anything_else(load):
    data = with_changes(filters={"skip_if": [{"column": "status", "equals": "test"}]})
    mapping = load(data)
    # The row would be skipped by the filter and has no search value: the reader's error wins.
    row = flagged_row(9, "row 9 has 12 cells, the header 10", status="test", email="")
    with pytest.raises(RowError) as caught:
        mapping.build(row)
    assert str(caught.value) == "row 9 has 12 cells, the header 10"
    assert caught.value.column is None


def test_row_with_an_empty_error_builds_normally(load):
    mapping = load(base_mapping())
    assert mapping.build(flagged_row(3, "", email="a@x.io")).key == "a@x.io"


# --------------------------------------------------------------------------- value maps


def map_mapping(load, **spec: Any) -> Mapping:
    attributes = {"EmailAddress": "email", "mx_Opt_In": {"column": "opt", **spec}}
    return load(with_changes(lead={"attributes": attributes}))


def sent_attribute(mapping: Mapping, **values: str) -> str | None:
    details = build(mapping, email="a@x.io", **values).body["LeadDetails"]
    sent = [item["Value"] for item in details if item["Attribute"] == "mx_Opt_In"]
    return sent[0] if sent else None


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


# --------------------------------------------------------------------------- dates on any value


UTC_TEXT = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def test_date_is_sent_as_written_without_time_zone(load):
    mapping = map_mapping(load, date="%d/%m/%Y")
    assert sent_attribute(mapping, opt="01/05/1990") == "1990-05-01"
    mapping = map_mapping(load, date={"format": ["%d/%m/%Y", "%Y-%m-%d %H:%M:%S"]})
    assert sent_attribute(mapping, opt="1990-05-01 00:00:00") == "1990-05-01"  # an Excel date


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/New_York", "Pacific/Kiritimati"])
@pytest.mark.parametrize("day", ["2024-01-01", "2024-03-10", "2024-11-03"])
def test_date_never_shifts_a_day_whatever_the_source_zone(load, zone, day):
    attributes = {"EmailAddress": "email", "mx_Opt_In": {"column": "opt", "date": "%Y-%m-%d"}}
    mapping = load(with_changes(source={"timezone": zone}, lead={"attributes": attributes}))
    assert sent_attribute(mapping, opt=day) == day


def test_two_digit_year_is_refused_by_four_digit_year_format(load):
    mapping = map_mapping(load, date="%d/%m/%Y")
    with pytest.raises(RowError) as caught:
        sent_attribute(mapping, opt="01/05/24")
    assert "cannot parse '01/05/24' with format %d/%m/%Y" in str(caught.value)
    assert "two-digit year" in str(caught.value)
    assert sent_attribute(map_mapping(load, date="%d/%m/%y"), opt="01/05/24") == "2024-05-01"


@pytest.mark.parametrize(
    ("zone", "local", "utc"),
    [
        ("Asia/Kolkata", "2024-03-10 01:00", "2024-03-09 19:30:00"),
        ("Asia/Kolkata", "2024-11-03 12:00", "2024-11-03 06:30:00"),
        ("America/New_York", "2024-03-10 01:00", "2024-03-10 06:00:00"),  # EST
        ("America/New_York", "2024-03-10 12:00", "2024-03-10 16:00:00"),  # EDT
        ("America/New_York", "2024-11-03 00:30", "2024-11-03 04:30:00"),  # EDT
        ("America/New_York", "2024-11-03 12:00", "2024-11-03 17:00:00"),  # EST
    ],
)
def test_datetime_on_a_lead_attribute_and_an_activity_field(load, zone, local, utc):
    spec = {"column": "at", "datetime": {"format": "%Y-%m-%d %H:%M", "timezone": zone}}
    data = with_changes(
        lead={"attributes": {"EmailAddress": "email", "mx_Seen": spec}},
        activity={"fields": {"mx_Custom_5": {**spec, "datetime": "%Y-%m-%d %H:%M"}}},
        source={"timezone": zone},
    )
    body = build(load(data), email="a@x.io", at=local).body
    assert body["LeadDetails"][1] == {"Attribute": "mx_Seen", "Value": utc}
    assert body["Activity"]["Fields"] == [{"SchemaName": "mx_Custom_5", "Value": utc}]
    assert re.fullmatch(UTC_TEXT, utc)


def test_datetime_value_needs_a_time_zone(write):
    data = base_mapping()
    del data["source"]
    data["lead"]["attributes"]["mx_City"] = {"column": "c", "datetime": "%Y-%m-%d %H:%M"}
    with pytest.raises(MappingError, match=r"give lead\.attributes\.mx_City\.datetime\.timezone"):
        load_mapping(write(data))


def test_constant_date_is_converted_once_at_load(load):
    attributes = {"EmailAddress": "email", "mx_Since": {"value": "01/04/2024", "date": "%d/%m/%Y"}}
    mapping = load(with_changes(lead={"attributes": attributes}))
    assert build(mapping, email="a@x.io").body["LeadDetails"][1]["Value"] == "2024-04-01"


# --------------------------------------------------------------------------- templates anywhere


def test_templates_work_in_every_kind_of_value(load):
    data = with_changes(
        activity={
            "note": {"template": "{city}: {notes}"},
            "datetime": {"template": "{day} {time}", "format": "%d/%m/%Y %H:%M"},
            "fields": {
                "mx_Custom_1": {"template": "{city}-{day}", "transform": "upper"},
                "mx_CFS": {"fields": {"When": {"template": "{day}", "date": "%d/%m/%Y"}}},
            },
        }
    )
    data["lead"]["attributes"]["mx_KYC"] = {"fields": {"Ref": {"template": "K-{notes}"}}}
    values = {
        "email": "a@x.io",
        "city": "Pune",
        "notes": "n1",
        "day": "01/05/2024",
        "time": "15:00",
    }
    body = build(load(data), **values).body
    assert body["LeadDetails"][2]["Fields"] == [{"Attribute": "Ref", "Value": "K-n1"}]
    activity = body["Activity"]
    assert activity["ActivityNote"] == "Pune: n1"
    assert activity["ActivityDateTime"] == "2024-05-01 09:30:00"
    assert activity["Fields"][0] == {"SchemaName": "mx_Custom_1", "Value": "PUNE-01/05/2024"}
    assert activity["Fields"][1]["Fields"] == [{"Attribute": "When", "Value": "2024-05-01"}]


# --------------------------------------------------------------------------- filters


def filter_mapping(load, *conditions: dict[str, Any]) -> Mapping:
    return load(with_changes(filters={"skip_if": list(conditions)}))


@pytest.mark.parametrize(
    ("condition", "values", "reason"),
    [
        ({"column": "status", "equals": "test"}, {"status": " test "}, "column 'status' is 'test'"),
        (
            {"column": "status", "equals": "test", "case": "insensitive"},
            {"status": "TEST"},
            "column 'status' is 'TEST'",
        ),
        ({"column": "email", "empty": True}, {"email": " "}, "column 'email' is empty"),
        ({"column": "status", "empty": False}, {"status": "x"}, "column 'status' is not empty"),
        ({"column": "status", "in": ["junk", 0]}, {"status": "0"}, "column 'status' is '0'"),
        (
            {"column": "email", "matches": r"@test\.com$"},
            {"email": "a@test.com"},
            r"column 'email' ('a@test.com') matches '@test\.com$'",
        ),
    ],
)
def test_skip_if_conditions(load, condition, values, reason):
    mapping = filter_mapping(load, condition)
    with pytest.raises(RowSkipped) as caught:
        build(mapping, **{"email": "a@x.io", **values})
    assert caught.value.reason == f"{reason} (filters.skip_if[0])"
    assert not isinstance(caught.value, RowError)


@pytest.mark.parametrize(
    ("condition", "values"),
    [
        ({"column": "status", "equals": "test"}, {"status": "TEST"}),
        ({"column": "status", "equals": "test"}, {"status": "tests"}),
        ({"column": "status", "in": ["junk"]}, {}),
        ({"column": "email", "empty": True}, {}),
        ({"column": "email", "matches": "^x"}, {}),
    ],
)
def test_rows_not_matching_are_built(load, condition, values):
    mapping = filter_mapping(load, condition)
    assert build(mapping, **{"email": "a@x.io", **values}).key == "a@x.io"


def test_filters_run_before_mapping_and_any_condition_skips(load):
    mapping = filter_mapping(
        load,
        {"column": "status", "equals": "test"},
        {"column": "email", "empty": True, "reason": "no e-mail, nothing to find the lead by"},
    )
    with pytest.raises(RowSkipped, match="^no e-mail, nothing to find the lead by$"):
        build(mapping, email="", status="live")  # would be a RowError if mapped
    with pytest.raises(RowSkipped, match=r"filters\.skip_if\[0\]"):
        build(mapping, email="a@x.io", status="test")


def test_filter_columns_are_checked_against_the_header(load):
    mapping = filter_mapping(load, {"column": "status", "equals": "test"})
    assert mapping.columns()["status"] == "filters.skip_if[0]"
    with pytest.raises(MappingError, match=r"'status' \(filters\.skip_if\[0\]\)"):
        mapping.check_columns(["email", "city"], "leads.csv")


# --------------------------------------------------------------------------- activity field sets


def cfs_activity(**options: Any) -> dict[str, Any]:
    activity = {
        "event": 105,
        "fields": {
            "mx_Custom_1": "amount",
            "mx_Custom_2": {"fields": {"mx_CustomObject_1": "a", "mx_CustomObject_2": "b"}},
        },
    }
    return with_changes(activity=activity, options=options)


def test_activity_custom_field_set_in_the_fact_sheet_form(load):
    body = build(load(cfs_activity()), email="a@x.io", amount="5", a="x", b="").body
    assert body["Activity"]["Fields"] == [
        {"SchemaName": "mx_Custom_1", "Value": "5"},
        {
            "Attribute": "mx_Custom_2",
            "Value": "",
            "Fields": [{"Attribute": "mx_CustomObject_1", "Value": "x"}],
        },
    ]


def test_activity_custom_field_set_with_schema_name_keys(load):
    mapping = load(cfs_activity(activity_cfs_key="SchemaName"))
    body = build(mapping, email="a@x.io", a="x", b="y").body
    assert body["Activity"]["Fields"] == [
        {
            "SchemaName": "mx_Custom_2",
            "Value": "",
            "Fields": [
                {"SchemaName": "mx_CustomObject_1", "Value": "x"},
                {"SchemaName": "mx_CustomObject_2", "Value": "y"},
            ],
        }
    ]


def test_activity_custom_field_set_with_all_fields_empty_is_omitted(load):
    body = build(load(cfs_activity()), email="a@x.io").body
    assert "Fields" not in body["Activity"]


# --------------------------------------------------------------------------- for preflight


def test_what_the_mapping_sends_for_preflight(load):
    data = cfs_activity(validate_dropdown_options=True)
    data["lead"]["attributes"]["mx_KYC"] = {"fields": {"Status": "s", "Level": "l"}}
    mapping = load(data)
    assert mapping.activity_event == 105
    assert mapping.lead_attributes == ("EmailAddress", "mx_City", "mx_KYC")
    assert mapping.lead_cfs_fields == {"mx_KYC": ("Status", "Level")}
    assert mapping.activity_fields == ("mx_Custom_1", "mx_Custom_2")
    assert mapping.activity_cfs_fields == {
        "mx_Custom_2": ("mx_CustomObject_1", "mx_CustomObject_2")
    }
    assert mapping.validate_dropdown_options is True
    assert load(base_mapping()).validate_dropdown_options is False


# --------------------------------------------------------------------------- mapping errors


DROP = object()  # as a value in MAPPING_ERRORS: delete the key instead
ATTR = "lead.attributes"
DT = {"column": "at", "format": "%Y-%m-%d"}
ALLOWED_SPEC = (
    "allowed: column, value, template, default, required, empty, transform, map, unmapped, "
    "map_case, date, datetime, fields"
)
ALLOWED_TOP = "allowed: version, source, filters, lead, activity, options"

# (dotted key to change, new value or DROP, text the one-line message must contain)
MAPPING_ERRORS = [
    (
        "activity.event",
        "105",
        "activity.event: must be an integer (the activity type code, e.g. 105)",
    ),
    ("activity.event", 10.5, "activity.event: must be an integer"),
    ("activity.event", DROP, "activity.event: missing; the activity type code"),
    ("activity", DROP, "activity: missing"),
    ("version", DROP, "version: missing; add 'version: 1'"),
    ("version", 2, "version: must be 1"),
    (f"{ATTR}.EmailAddress", {"column": "a", "value": "b"}, "EmailAddress: give exactly one of"),
    (f"{ATTR}.EmailAddress", {"default": "b"}, "EmailAddress: give exactly one of column, value"),
    (f"{ATTR}.EmailAddress", None, f"{ATTR}.EmailAddress: is empty; give a column name"),
    (f"{ATTR}.EmailAddress", ["email"], "EmailAddress: must be a column name or a mapping"),
    (f"{ATTR}.EmailAddress", {"colum": "x"}, f"EmailAddress.colum: unknown key 'colum' in {ATTR}"),
    (f"{ATTR}.EmailAddress", {"colum": "x"}, ALLOWED_SPEC),
    (f"{ATTR}.EmailAddress", {"column": ""}, f"{ATTR}.EmailAddress.column: must not be empty"),
    (f"{ATTR}.mx_City", {"value": True}, "mx_City.value: YAML read this as true; quote it"),
    (f"{ATTR}.mx_City", {"value": 1.5}, "mx_City.value: YAML read this as the number 1.5"),
    (f"{ATTR}.mx_City", {"column": "c", "required": "yes"}, "mx_City.required: must be true or"),
    (f"{ATTR}.mx_City", {"column": "c", "empty": "no"}, "mx_City.empty: must be 'omit' or 'send'"),
    (f"{ATTR}.mx_City", {"template": "{city"}, "mx_City.template: unclosed '{' at position 1"),
    (f"{ATTR}.mx_City", {"template": "a } b"}, "mx_City.template: unmatched '}' at position 3"),
    (f"{ATTR}.mx_City", {"template": "a {} b"}, "mx_City.template: empty '{}'"),
    (f"{ATTR}.mx_KYC", {"fields": {}}, f"{ATTR}.mx_KYC.fields: must not be empty"),
    (f"{ATTR}.mx_KYC", {"fields": {"S": "s"}, "required": True}, "mx_KYC: a custom field set"),
    (f"{ATTR}.mx_KYC", {"fields": {"S": {"x": 1}}}, "mx_KYC.fields.S.x: unknown key 'x'"),
    (f"{ATTR}.SearchBy", "x", f"{ATTR}.SearchBy: is added from lead.search_by"),
    (ATTR, {}, f"{ATTR}: must not be empty"),
    (ATTR, ["email"], f"{ATTR}: must be a mapping"),
    ("lead.search_by", "Email", "lead.search_by: 'Email' is not one of the mapped attributes"),
    ("lead.search_by", "Email", "attributes (EmailAddress, mx_City)"),
    ("lead.search_by", "ProspectId", "map the lead id column as lead.attributes.ProspectId"),
    ("lead.search_by", DROP, "lead.search_by: missing"),
    ("lead.atributes", {}, "lead.atributes: unknown key 'atributes' in lead; allowed: search_by,"),
    ("extra", 1, f"extra: unknown key 'extra' at the top level; {ALLOWED_TOP}"),
    ("source.timezone", "Asia/Kolkatta", "source.timezone: unknown time zone 'Asia/Kolkatta'"),
    ("activity.datetime", {**DT, "timezone": "Mars/Base"}, "datetime.timezone: unknown time zone"),
    ("activity.datetime", {**DT, "format": "dd/mm/yyyy"}, "format 'dd/mm/yyyy' has no year"),
    (
        "activity.datetime",
        {**DT, "format": "%Y-%m-%Q"},
        "datetime.format: format '%Y-%m-%Q' cannot",
    ),
    ("activity.datetime", {**DT, "format": "%Y %Y"}, "datetime.format: format '%Y %Y' cannot"),
    ("activity.datetime", {**DT, "format": []}, "activity.datetime.format: must not be empty"),
    ("activity.datetime", {"column": "at"}, "activity.datetime.format: missing"),
    ("activity.datetime", {**DT, "empty": "send"}, "activity.datetime.empty: must be 'omit'"),
    ("activity.note", {"column": "n", "format": "%Y"}, "activity.note.format: unknown key"),
    ("options.validate_dropdown_options", "yes", "validate_dropdown_options: must be true or"),
    ("lead", None, "lead: must be a mapping"),
    (f"{ATTR}.mx_City", {"column": "c", "transform": "lowr"}, "unknown transform 'lowr'; allowed:"),
    (f"{ATTR}.mx_City", {"column": "c", "transform": []}, "mx_City.transform: must not be empty"),
    (f"{ATTR}.mx_City", {"column": "c", "transform": {"lower": {}}}, "'lower' takes no options"),
    (
        f"{ATTR}.mx_City",
        {"column": "c", "transform": {"phone": {"country": "91"}}},
        "transform: phone: unknown option 'country'; allowed: default_country_code, national_",
    ),
    (
        f"{ATTR}.mx_City",
        {"column": "c", "transform": {"phone": {"default_country_code": "9"}}},
        "phone.default_country_code: '9' is not a country calling code",
    ),
    (
        f"{ATTR}.mx_City",
        {"column": "c", "transform": {"number": {"decimals": "2"}}},
        "number.decimals: must be a whole number from 0 to 10",
    ),
    (
        f"{ATTR}.mx_City",
        {"column": "c", "transform": {"number": {"decimal": ";"}}},
        "number.decimal: must be '.' or ','",
    ),
    (f"{ATTR}.mx_City", {"column": "c", "map": {True: "Y"}}, "map: YAML read a key as true"),
    (f"{ATTR}.mx_City", {"column": "c", "map": {"Y": None}}, "the value for 'Y': is empty"),
    (f"{ATTR}.mx_City", {"column": "c", "map": {}}, "mx_City.map: must not be empty"),
    (f"{ATTR}.mx_City", {"column": "c", "unmapped": "keep"}, "unmapped only applies with map"),
    (f"{ATTR}.mx_City", {"column": "c", "map": {"a": "1"}, "unmapped": "x"}, "must be 'error', "),
    (
        f"{ATTR}.mx_City",
        {"column": "c", "map": {"a": "1", "A": "2"}, "map_case": "insensitive"},
        "keys that differ only in case map to different values",
    ),
    (f"{ATTR}.mx_City", {"column": "c", "date": "dd/mm/yyyy"}, "mx_City.date.format: format 'dd/"),
    (
        f"{ATTR}.mx_City",
        {"column": "c", "date": {"format": "%Y", "timezone": "UTC"}},
        "unknown key 'timezone' in lead.attributes.mx_City.date; allowed: format (a date is sent",
    ),
    (f"{ATTR}.mx_City", {"column": "c", "date": "%Y", "datetime": "%Y"}, "date or datetime, not"),
    (
        f"{ATTR}.mx_City",
        {"column": "c", "datetime": {"format": "%Y", "timezone": "Mars/Base"}},
        "mx_City.datetime.timezone: unknown time zone 'Mars/Base'",
    ),
    (f"{ATTR}.mx_City", {"column": "c", "default": "x", "date": "%Y"}, "mx_City.default: cannot"),
    (f"{ATTR}.mx_KYC", {"fields": {"S": "s"}, "map": {"a": "b"}}, "takes only fields; put default"),
    ("activity.datetime", {**DT, "date": "%Y"}, "activity.datetime.date: unknown key 'date'"),
    ("filters.skip_if", [{"column": "s"}], "filters.skip_if[0]: give exactly one of equals, in,"),
    ("filters.skip_if", [{"equals": "x"}], "filters.skip_if[0].column: missing"),
    ("filters.skip_if", [{"column": "s", "in": []}], "filters.skip_if[0].in: must not be empty"),
    ("filters.skip_if", [{"column": "s", "matches": "("}], "[0].matches: '(' is not a regular"),
    (
        "filters.skip_if",
        [{"column": "s", "equal": "x"}],
        "unknown key 'equal' in filters.skip_if[0]; allowed: column, equals, in, matches, empty,",
    ),
    ("filters.skip_if", {"column": "s"}, "filters.skip_if: must be a list"),
    ("options.activity_cfs_key", "Name", "must be 'Attribute' or 'SchemaName'"),
]


@pytest.mark.parametrize(("key", "value", "expected"), MAPPING_ERRORS)
def test_mapping_errors_name_the_key(write, key, value, expected):
    data = copy.deepcopy(base_mapping())
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    if value is DROP:
        del node[last]
    else:
        node[last] = value
    path = write(data)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_datetime_without_any_timezone_is_a_mapping_error(write):
    data = base_mapping()
    del data["source"]
    data["activity"]["datetime"] = DT
    with pytest.raises(MappingError, match=r"activity\.datetime: no time zone .* source\.timezone"):
        load_mapping(write(data))


def test_several_problems_are_reported_together_on_one_line(write):
    data = with_changes(activity={"event": "x", "bogus": 1})
    with pytest.raises(MappingError) as caught:
        load_mapping(write(data))
    message = str(caught.value)
    assert "activity.event: must be an integer" in message
    assert "activity.bogus: unknown key" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the mapping file is empty"),
        ("# only a comment\n", "the mapping file is empty"),
        ("- a\n- b\n", "the top level must be a mapping"),
        (
            "version: 1\nlead:\n  search_by: [x\n",
            "line 4, column 1: YAML syntax error: expected ','",
        ),
        ("version: 1\n\tlead: 2\n", "line 2, column 1: YAML syntax error: found character '\\t'"),
        (
            "version: 1\nversion: 1\n",
            "line 2, column 1: YAML syntax error: duplicate key 'version'",
        ),
    ],
)
def test_unreadable_mapping_files(write, text, expected):
    path = write(text)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_missing_mapping_file(tmp_path):
    with pytest.raises(MappingError, match="nope.yaml: mapping file not found"):
        load_mapping(tmp_path / "nope.yaml")


def test_mapping_path_is_a_directory(tmp_path):
    with pytest.raises(MappingError, match="is a directory"):
        load_mapping(tmp_path)


def test_mapping_file_not_utf8(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_bytes(b"version: 1\n# caf\xe9\n")
    with pytest.raises(MappingError, match="not UTF-8 text"):
        load_mapping(path)


# --------------------------------------------------------------------------- example.yaml


def test_example_mapping_loads():
    mapping = load_mapping(EXAMPLE)
    assert mapping.search_by == "EmailAddress"
    assert mapping.activity_event == 105
    assert set(mapping.columns()) == {
        "first_name",
        "last_name",
        "email",
        "phone",
        "city",
        "kyc_status",
        "visited_at",
        "amount",
        "product",
        "notes",
    }
    mapping.check_columns(list(mapping.columns()), "leads.csv")


@pytest.mark.parametrize("visited_at", ["01/05/2024 15:00", "2024-05-01 15:00:00"])
def test_example_mapping_builds_from_a_sample_row(visited_at):
    mapping = load_mapping(EXAMPLE)
    values = {
        "first_name": "Asha",
        "last_name": "Rao",
        "email": "Asha.Rao@Example.com",
        "phone": "098765 43210",
        "city": "Pune",
        "kyc_status": "Pending",
        "visited_at": visited_at,
        "amount": "1,200",
        "product": "Gold",
        "notes": "Asked for a call back",
    }
    payload = mapping.build(Row(number=2, values=values))
    kyc = "Pending"
    assert payload.key == "asha.rao@example.com"
    assert payload.body == {
        "LeadDetails": [
            {"Attribute": "FirstName", "Value": "Asha"},
            {"Attribute": "LastName", "Value": "Rao"},
            {"Attribute": "EmailAddress", "Value": "Asha.Rao@Example.com"},
            {"Attribute": "Phone", "Value": "+91-9876543210"},
            {"Attribute": "mx_City", "Value": "Pune"},
            {"Attribute": "mx_KYC", "Value": "", "Fields": [{"Attribute": "Status", "Value": kyc}]},
            {"Attribute": "SearchBy", "Value": "EmailAddress"},
        ],
        "Activity": {
            "ActivityEvent": 105,
            "ActivityNote": "Visited Pune. Asked for a call back",
            "ActivityDateTime": "2024-05-01 09:30:00",
            "Fields": [
                {"SchemaName": "mx_Custom_1", "Value": "1200.00"},
                {"SchemaName": "mx_Custom_2", "Value": "Gold"},
            ],
        },
    }
    json.dumps(payload.body)  # serialisable as is
