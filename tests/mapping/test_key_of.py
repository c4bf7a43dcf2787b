"""Mapping.key_of(row): the lead a row names, as build(row).key has it, without the payload."""

from __future__ import annotations

import pytest

from importer.mapping import RowError, RowSkipped, load_mapping
from importer.reader import Row, open_input

from ..conftest import EXAMPLE_MAPPING, SAMPLE_CSV
from .conftest import build, with_changes


def test_key_of_equals_the_built_key_on_the_sample_data():
    mapping = load_mapping(EXAMPLE_MAPPING)
    with open_input(SAMPLE_CSV) as rows:
        built = 0
        for row in rows.rows():
            try:
                key = mapping.build(row).key
            except (RowError, RowSkipped):
                continue
            assert mapping.key_of(row) == key, row.number
            built += 1
    assert built == 200


def phone_mapping(load, **changes):
    spec = {"column": "mobile", "transform": {"phone": {"default_country_code": "91"}}}
    attributes = {"Phone": {**spec, **changes}, "EmailAddress": "email"}
    return load(with_changes(lead={"search_by": "Phone", "attributes": attributes}))


@pytest.mark.parametrize(
    "mobile",
    ["098450 98450", "+91-98450 98450", "(+91) 98450-98450", "9845098450", "+1 (415) 555-0100"],
)
def test_key_of_applies_the_search_values_transforms_and_normalisation(load, mobile):
    mapping = phone_mapping(load)
    row = Row(number=2, values={"mobile": mobile, "email": "a@x.io"})
    assert mapping.key_of(row) == mapping.build(row).key
    assert mapping.key_of(row).isdigit()  # Phone keys compare digits only


def test_key_of_uses_the_default(load):
    mapping = phone_mapping(load, default="+91 98450 98450")
    row = Row(number=2, values={"mobile": "", "email": "a@x.io"})
    assert mapping.key_of(row) == mapping.build(row).key == "919845098450"


def test_key_of_uses_the_map(load):
    spec = {"column": "email", "transform": "lower", "map": {"a@old.io": "A@New.io", "-": ""}}
    attributes = {"EmailAddress": {**spec, "unmapped": "keep"}}
    mapping = load(with_changes(lead={"attributes": attributes}))
    for email, key in (("A@OLD.io", "a@new.io"), ("C@X.io", "c@x.io"), ("-", "")):
        row = Row(number=2, values={"email": email})
        assert mapping.key_of(row) == key
        if key:
            assert mapping.build(row).key == key
        else:  # mapped to "": an empty SearchBy value, an invalid row
            with pytest.raises(RowError):
                mapping.build(row)


def test_key_of_a_template_and_case_insensitive_emails(load):
    spec = {"template": "{user}@{domain}", "transform": ["strip", "upper"]}
    mapping = load(
        with_changes(lead={"attributes": {"EmailAddress": spec, "mx_City": {"column": "city"}}})
    )
    row = Row(number=2, values={"user": " Asha ", "domain": "Example.COM"})
    assert mapping.key_of(row) == build(mapping, user=" Asha ", domain="Example.COM").key
    assert mapping.key_of(row) == "asha@example.com"


@pytest.mark.parametrize(
    "row",
    [
        Row(number=2, values={"mobile": "", "email": "a@x.io"}),  # empty SearchBy: invalid
        Row(number=3, values={"mobile": "n/a", "email": "a@x.io"}),  # the transform refuses it
        Row(number=4, values={}, error="row 4: 3 cells, but the header has 2 columns"),
    ],
    ids=["empty", "refused by its transform", "unreadable"],
)
def test_key_of_is_empty_when_the_row_names_no_lead(load, row):
    mapping = phone_mapping(load)
    assert mapping.key_of(row) == ""
    with pytest.raises(RowError):
        mapping.build(row)


def test_key_of_ignores_filters_and_the_other_values(load):
    # Only the SearchBy value is worked out: a skipped row, or one another column makes
    # invalid, still names its lead.
    attributes = {"EmailAddress": "email", "mx_Code": {"column": "code", "required": True}}
    mapping = load(
        with_changes(
            filters={"skip_if": [{"column": "status", "equals": "test"}]},
            lead={"attributes": attributes},
        )
    )
    skipped = Row(number=2, values={"email": "A@X.io", "code": "1", "status": "test"})
    invalid = Row(number=3, values={"email": "B@X.io", "code": "", "status": ""})
    assert mapping.key_of(skipped) == "a@x.io"
    assert mapping.key_of(invalid) == "b@x.io"
    with pytest.raises(RowSkipped):
        mapping.build(skipped)
    with pytest.raises(RowError):
        mapping.build(invalid)
