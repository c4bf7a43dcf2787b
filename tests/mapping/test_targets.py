"""Mapping.targets(): what the mapping sends, for a check against the account's fields."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from importer.mapping import Mapping, Target

from .conftest import with_changes


def lead_targets(load, **attributes: Any) -> dict[str, Target]:
    """The targets of a mapping with these lead attributes besides the e-mail, by key."""
    mapping = load(with_changes(lead={"attributes": {"EmailAddress": "email", **attributes}}))
    return {target.key: target for target in mapping.targets()}


def only(load, spec: Any) -> Target:
    return lead_targets(load, mx_X=spec)["lead.attributes.mx_X"]


def test_a_column_is_free_with_nothing_fixed(load):
    assert only(load, "x") == Target(
        section="lead",
        parent=None,
        name="mx_X",
        key="lead.attributes.mx_X",
        column="x",
        fixed=(),
        free=True,
    )


def test_a_constant_is_fixed_and_not_free(load):
    target = only(load, {"value": "Fixed"})
    assert (target.column, target.fixed, target.free) == (None, ("Fixed",), False)
    assert only(load, {"value": 7}).fixed == ("7",)


def test_a_constant_goes_through_its_transforms_and_dates(load):
    assert only(load, {"value": " pune ", "transform": ["strip", "title"]}).fixed == ("Pune",)
    assert only(load, {"value": "01/05/1990", "date": "%d/%m/%Y"}).fixed == ("1990-05-01",)


def test_an_empty_constant_fixes_nothing_unless_it_has_a_default(load):
    assert only(load, {"value": ""}).fixed == ()
    assert only(load, {"value": "", "default": "D"}).fixed == ("D",)


def test_a_column_default_is_fixed_as_build_sends_it(load):
    target = only(load, {"column": "x", "default": "d", "transform": "upper"})
    assert (target.column, target.fixed, target.free) == ("x", ("D",), True)


def test_a_required_column_fixes_nothing(load):
    # An empty cell refuses the row: nothing is sent, so nothing is fixed.
    assert only(load, {"column": "x", "required": True}).fixed == ()


def test_a_value_map_fixes_its_outputs_and_is_not_free(load):
    target = only(load, {"column": "x", "map": {"Y": "Yes", "N": "No", 1: "Yes"}, "default": "N"})
    # The default first (an empty cell), then each output once, in the map's order.
    assert target.fixed == ("No", "Yes")
    assert target.free is False


@pytest.mark.parametrize(("unmapped", "free"), [("keep", True), ("empty", False), ("error", False)])
def test_a_value_map_is_free_only_when_it_keeps_unmapped_cells(load, unmapped, free):
    target = only(load, {"column": "x", "map": {"Y": "Yes"}, "unmapped": unmapped})
    assert target.fixed == ("Yes",)
    assert target.free is free


def test_map_inputs_go_through_the_transforms_first(load):
    # build() upper-cases before the lookup: the key 'y' is never matched, and is refused.
    assert only(load, {"column": "x", "transform": "upper", "map": {"y": "Yes"}}).fixed == ()
    spec = {"column": "x", "transform": "upper", "map": {"y": "Yes"}, "unmapped": "keep"}
    assert only(load, spec).fixed == ("Y",)


def test_map_outputs_are_converted_like_the_cells(load):
    spec = {"column": "x", "map": {"a": "01/02/2024", "b": "not a date"}, "date": "%d/%m/%Y"}
    assert only(load, spec).fixed == ("2024-02-01",)  # 'not a date' would refuse its row


def test_a_value_mapped_to_empty_is_not_fixed(load):
    assert only(load, {"column": "x", "map": {"Y": "Yes", "-": ""}}).fixed == ("Yes",)


def test_a_template_is_free_with_nothing_fixed(load):
    target = only(load, {"template": "{a} {b}"})
    assert (target.column, target.fixed, target.free) == (None, (), True)
    assert only(load, {"template": "{a}", "map": {"x": "X"}}).free is False


def test_every_target_in_mapping_order_with_field_sets_on_lead_and_activity(load):
    data = with_changes(
        lead={
            "attributes": {
                "mx_KYC": {
                    "fields": {
                        "Status": {"column": "kyc", "map": {"V": "Verified"}},
                        "Level": {"value": "L1"},
                    }
                },
                "EmailAddress": "email",
            }
        },
        activity={
            "note": {"column": "notes"},
            "datetime": {"column": "at", "format": "%Y-%m-%d"},
            "fields": {
                "mx_Custom_1": {"column": "amount", "default": "0"},
                "mx_Custom_2": {
                    "fields": {
                        "mx_CustomObject_1": {"column": "o", "map": {"a": "A"}, "unmapped": "keep"},
                        "mx_CustomObject_2": {"value": "B"},
                    }
                },
            },
        },
    )
    targets = load(data).targets()
    lead_set = "lead.attributes.mx_KYC"
    activity_set = "activity.fields.mx_Custom_2"
    assert targets == (
        Target("lead", None, "mx_KYC", lead_set, None, (), False, field_set=True),
        Target(
            "lead", "mx_KYC", "Status", f"{lead_set}.fields.Status", "kyc", ("Verified",), False
        ),
        Target("lead", "mx_KYC", "Level", f"{lead_set}.fields.Level", None, ("L1",), False),
        Target("lead", None, "EmailAddress", "lead.attributes.EmailAddress", "email", (), True),
        Target(
            "activity", None, "mx_Custom_1", "activity.fields.mx_Custom_1", "amount", ("0",), True
        ),
        Target("activity", None, "mx_Custom_2", activity_set, None, (), False, field_set=True),
        Target(
            "activity",
            "mx_Custom_2",
            "mx_CustomObject_1",
            f"{activity_set}.fields.mx_CustomObject_1",
            "o",
            ("A",),
            True,
        ),
        Target(
            "activity",
            "mx_Custom_2",
            "mx_CustomObject_2",
            f"{activity_set}.fields.mx_CustomObject_2",
            None,
            ("B",),
            False,
        ),
    )  # the activity note and date-time are not targets


def test_targets_agree_with_the_names_the_mapping_reports(load):
    data = with_changes(
        lead={"attributes": {"EmailAddress": "email", "mx_KYC": {"fields": {"S": "s"}}}},
        activity={"fields": {"mx_Custom_1": "a", "mx_Custom_2": {"fields": {"O": "o"}}}},
    )
    mapping: Mapping = load(data)
    top = [t for t in mapping.targets() if t.parent is None]
    assert tuple(t.name for t in top if t.section == "lead") == mapping.lead_attributes
    assert tuple(t.name for t in top if t.section == "activity") == mapping.activity_fields
    sets = {t.name for t in top if t.field_set}
    assert sets == set(mapping.lead_cfs_fields) | set(mapping.activity_cfs_fields)


def test_a_target_is_frozen(load):
    target = only(load, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.free = False  # type: ignore[misc]
