"""Fixtures and helpers shared by the mapping tests: write a mapping, load it, build a row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from importer.mapping import Mapping, Payload, load_mapping
from importer.reader import Row


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


def map_mapping(load, **spec: Any) -> Mapping:
    """A mapping whose one attribute besides the e-mail, mx_Opt_In, reads column opt."""
    attributes = {"EmailAddress": "email", "mx_Opt_In": {"column": "opt", **spec}}
    return load(with_changes(lead={"attributes": attributes}))


def sent_attribute(mapping: Mapping, **values: str) -> str | None:
    details = build(mapping, email="a@x.io", **values).body["LeadDetails"]
    sent = [item["Value"] for item in details if item["Attribute"] == "mx_Opt_In"]
    return sent[0] if sent else None
