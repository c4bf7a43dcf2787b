"""Mapping files that do not load: one line naming each key and what it accepts."""

from __future__ import annotations

import copy

import pytest

from importer.exceptions import MappingError
from importer.mapping import load_mapping

from .conftest import base_mapping, with_changes

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
    (
        "activity.event",
        -1,
        "activity.event: -1 is not an activity type code: it must be a whole number from 1 to "
        "2147483647, e.g. 105 (Settings > Activities > Custom Activities)",
    ),
    (
        "activity.event",
        99999999999999999999999999,
        "activity.event: 99999999999999999... is not an activity type code",
    ),
    ("activity.event", 2**31, "activity.event: 2147483648 is not an activity type code"),
    ("activity.event", 0, "activity.event: 0 is not an activity type code (init-mapping writes"),
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


@pytest.mark.parametrize("code", [1, 105, 2**31 - 1])
def test_event_codes_in_range_load(load, code):
    assert load(with_changes(activity={"event": code})).activity_event == code


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
