"""Mapping.build: rows -> CreateCustom bodies (values, keys, field sets, filters, columns)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from importer.exceptions import MappingError
from importer.mapping import Mapping, RowError, RowSkipped, load_mapping
from importer.reader import Row

from .conftest import base_mapping, build, with_changes

EXAMPLE = Path(__file__).resolve().parents[2] / "mappings" / "example.yaml"

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
