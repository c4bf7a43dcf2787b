"""Tests for importer.mapping: mapping files -> CreateCustom bodies, and their error messages."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from importer.exceptions import MappingError
from importer.mapping import Mapping, Payload, RowError, _fast_parser, load_mapping

try:
    from importer.reader import Row
except ImportError:  # reader.py is written in parallel; this is its documented row shape

    @dataclass(frozen=True, slots=True)
    class Row:  # type: ignore[no-redef]
        number: int
        values: dict[str, str]


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
    parser = _fast_parser(fmt)
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


# --------------------------------------------------------------------------- mapping errors


DROP = object()  # as a value in MAPPING_ERRORS: delete the key instead
ATTR = "lead.attributes"
DT = {"column": "at", "format": "%Y-%m-%d"}
ALLOWED_SPEC = "allowed: column, value, template, default, required, empty, fields"
ALLOWED_TOP = "allowed: version, source, lead, activity, options"

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
        "phone": "+91-9876543210",
        "city": "Pune",
        "kyc_status": "Pending",
        "visited_at": visited_at,
        "amount": "1200",
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
                {"SchemaName": "mx_Custom_1", "Value": "1200"},
                {"SchemaName": "mx_Custom_2", "Value": "Gold"},
            ],
        },
    }
    json.dumps(payload.body)  # serialisable as is
