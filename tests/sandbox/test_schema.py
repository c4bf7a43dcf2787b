"""Sandbox schemas: files in YAML or JSON, their one-line errors, schemas built in Python."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from importer.exceptions import ConfigError
from importer.sandbox import Sandbox, SandboxSchema

from .helpers import body, post, run


def test_schema_from_yaml_and_json(tmp_path: Path) -> None:
    data = {
        "lead_fields": [
            {"SchemaName": "EmailAddress", "DataType": "Email", "IsLeadIdentifier": True},
            {"SchemaName": "mx_Plan", "DataType": "Select", "Options": ["Gold", "Silver"]},
        ],
        "activity_types": [{"ActivityEvent": 201, "ActivityEventName": "Renewal", "Fields": []}],
    }
    yaml_file = tmp_path / "schema.yaml"
    yaml_file.write_text(
        "lead_fields:\n"
        "  - {SchemaName: EmailAddress, DataType: Email, IsLeadIdentifier: true}\n"
        "  - {SchemaName: mx_Plan, DataType: Select, Options: [Gold, Silver]}\n"
        "activity_types:\n"
        "  - {ActivityEvent: 201, ActivityEventName: Renewal, Fields: []}\n"
    )
    json_file = tmp_path / "schema.json"
    json_file.write_text(json.dumps(data))
    assert SandboxSchema.from_file(yaml_file) == SandboxSchema.from_file(json_file)
    schema = SandboxSchema.from_file(yaml_file)

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        ok = body(lead=[{"Attribute": "mx_Plan", "Value": "Gold"}], activity={"ActivityEvent": 201})
        assert (await post(s, ok))[0] == 200
        assert (
            await post(
                s,
                body(
                    lead=[{"Attribute": "FirstName", "Value": "A"}], activity={"ActivityEvent": 201}
                ),
            )
        )[0] == 500
        assert (await post(s, body(activity={"ActivityEvent": 105})))[0] == 500

    run(fn, schema=schema)


@pytest.mark.parametrize(
    ("content", "in_message"),
    [
        ("lead_fields: [\n", "not valid YAML"),
        ("- just a list\n", "mapping"),
        ("lead_fields: []\nactivity_types: []\nextra: 1\n", "extra"),
        ("lead_fields: [{DisplayName: X}]\nactivity_types: []\n", "lead_fields[0]"),
        ("lead_fields: []\nactivity_types: [{ActivityEventName: X}]\n", "activity_types[0]"),
        ("lead_fields: []\n", "activity_types"),
    ],
    ids=["syntax", "not-mapping", "unknown-key", "no-schema-name", "no-event-code", "missing-key"],
)
def test_bad_schema_file_is_one_line_config_error(
    tmp_path: Path, content: str, in_message: str
) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        SandboxSchema.from_file(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and in_message in message


def test_schema_file_activity_custom_field_set_one_level_only(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(
        "lead_fields: [{SchemaName: EmailAddress, DataType: Email}]\n"
        "activity_types:\n"
        "  - ActivityEvent: 201\n"
        "    Fields:\n"
        "      - SchemaName: mx_Custom_1\n"
        "        DataType: CustomObject\n"
        "        Fields: [{SchemaName: Tier, DataType: Dropdown, OptionSet: [A, B]}]\n"
    )
    cfs = SandboxSchema.from_file(path).activity_types[0]["Fields"][0]
    assert cfs["Fields"][0]["SchemaName"] == "Tier" and cfs["Fields"][0]["IsMandatory"] is False
    path.write_text(
        path.read_text().replace(
            "[{SchemaName: Tier, DataType: Dropdown, OptionSet: [A, B]}]",
            "[{SchemaName: Inner, DataType: CustomObject, Fields: []}]",
        )
    )
    with pytest.raises(ConfigError, match=r"activity_types\[0\]\.Fields\[0\]\.Fields\[0\].*nested"):
        SandboxSchema.from_file(path)


def test_missing_schema_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        SandboxSchema.from_file(tmp_path / "nope.yaml")


def test_schema_built_in_python_is_checked_at_construction() -> None:
    with pytest.raises(ConfigError, match=r"activity_types\[0\]"):
        Sandbox(schema=SandboxSchema(lead_fields=[], activity_types=[{"Fields": []}]))
