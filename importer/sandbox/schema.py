"""What the emulated account knows: its lead fields and activity types.

:class:`SandboxSchema` holds them in the shapes of ``LeadsMetaData.Get`` and
``GetActivitySetting``; :meth:`SandboxSchema.from_file` loads one from YAML or JSON and
:func:`validate_schema_data` checks its shape. The helpers at the end answer what a field
accepts (its dropdown options, whether it is a custom field set), for the account's checks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..exceptions import ConfigError

__all__ = [
    "SandboxSchema",
    "allowed_options",
    "is_custom_field_set",
    "option_value",
    "validate_schema_data",
]

_DROPDOWN_TYPES = {"select", "dropdown", "searchabledropdown", "multiselect"}


def _options(items: list[str]) -> list[dict[str, str]]:
    return [{"Value": v, "Text": v} for v in items]


def _lead_field(
    name: str,
    display: str,
    data_type: str = "String",
    max_length: int = 100,
    *,
    identifier: bool = False,
    options: list[str] | None = None,
) -> dict[str, Any]:
    f: dict[str, Any] = {
        "SchemaName": name,
        "DisplayName": display,
        "DataType": data_type,
        "IsMandatory": False,
        "MaxLength": str(max_length),
        "IsLeadIdentifier": identifier,
    }
    if options is not None:
        f["Options"] = _options(options)
    return f


def _default_lead_fields() -> list[dict[str, Any]]:
    kyc = _lead_field("mx_KYC", "KYC", "CustomObject", 0)
    kyc["MaxLength"] = ""
    kyc["Fields"] = [
        _lead_field("Status", "Status", "Select", options=["Pending", "Verified", "Rejected"]),
        _lead_field("Document_Number", "Document Number", "String", 50),
    ]
    return [
        _lead_field("FirstName", "First Name"),
        _lead_field("LastName", "Last Name"),
        _lead_field("EmailAddress", "Email", "Email", identifier=True),
        _lead_field("Phone", "Phone Number", "Phone", 50),
        _lead_field("Mobile", "Mobile Number", "Phone", 50),
        _lead_field("Company", "Company", max_length=200),
        _lead_field("JobTitle", "Job Title"),
        _lead_field("Source", "Lead Source"),
        _lead_field("mx_City", "City"),
        _lead_field("mx_State", "State"),
        _lead_field("mx_Country", "Country"),
        _lead_field(
            "ProspectStage", "Lead Stage", "Select", options=["Prospect", "Opportunity", "Customer"]
        ),
        kyc,
    ]


def _activity_field(
    name: str,
    display: str,
    data_type: str,
    *,
    mandatory: bool = False,
    options: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "SchemaName": name,
        "DisplayName": display,
        "DataType": data_type,
        "IsMandatory": mandatory,
        "OptionSet": _options(options) if options else [],
    }


def _default_activity_types() -> list[dict[str, Any]]:
    delivery = _activity_field("mx_Custom_4", "Delivery", "CustomObject")
    delivery["Fields"] = [
        _activity_field("City", "City", "String"),
        _activity_field("Slot", "Slot", "Dropdown", options=["Morning", "Evening"]),
    ]
    return [
        {
            "ActivityEvent": 105,
            "ActivityEventName": "Website_Purchase",
            "DisplayName": "Website Purchase",
            "Fields": [
                _activity_field("mx_Custom_1", "Amount", "Number"),
                _activity_field("mx_Custom_2", "Product", "String"),
                _activity_field(
                    "mx_Custom_3", "Interest", "Dropdown", options=["Hot", "Warm", "Cold"]
                ),
                delivery,
                # A spare text field, for options.row_token (see importer.sending.token).
                _activity_field("mx_Custom_5", "Import Token", "String"),
            ],
        },
        {
            "ActivityEvent": 106,
            "ActivityEventName": "Phone_Call",
            "DisplayName": "Phone Call",
            "Fields": [_activity_field("mx_Custom_1", "Call Outcome", "String", mandatory=True)],
        },
    ]


@dataclass
class SandboxSchema:
    """What the emulated account knows: its lead fields and activity types.

    ``lead_fields`` items look like LeadsMetaData.Get items (``SchemaName``, ``DisplayName``,
    ``DataType``, ``IsMandatory``, ``MaxLength`` as a string, ``Options`` for dropdowns,
    ``IsLeadIdentifier``); a ``CustomObject`` field carries its sub-fields in ``Fields``.
    ``activity_types`` items: ``ActivityEvent`` (int), ``ActivityEventName``, ``DisplayName``,
    ``Fields`` (``SchemaName``, ``DisplayName``, ``DataType``, ``IsMandatory``, ``OptionSet``);
    a ``CustomObject`` activity field carries its sub-fields (same keys) in ``Fields``. Sets
    nest one level only. A field is a dropdown if its DataType says so or it has options.
    """

    lead_fields: list[dict[str, Any]]
    activity_types: list[dict[str, Any]]

    @classmethod
    def default(cls) -> SandboxSchema:
        """The schema of a fresh sandbox: common lead fields, mx_KYC, activities 105 and 106.

        Activity 105 has mx_Custom_1 (Number), mx_Custom_2 (String), mx_Custom_3 (dropdown
        Hot/Warm/Cold) and the custom field set mx_Custom_4 "Delivery" with City (String) and
        Slot (dropdown Morning/Evening), and a spare text field mx_Custom_5 (for a row
        token); 106 has a mandatory mx_Custom_1.
        """
        return cls(lead_fields=_default_lead_fields(), activity_types=_default_activity_types())

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SandboxSchema:
        """Load a schema from YAML or JSON with the keys ``lead_fields`` and ``activity_types``.

        Raises ConfigError (one line, naming the file and the bad key) when the file is
        missing, unparsable or does not have the expected shape.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"{p}: cannot read the sandbox schema file ({exc.strerror or exc}); check the path"
            ) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: the sandbox schema file is not UTF-8 text") from exc
        try:
            data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(
                f"{p}: the sandbox schema file is not valid "
                f"{'JSON' if p.suffix.lower() == '.json' else 'YAML'} ({exc}); fix its syntax"
            ) from exc
        return cls(**validate_schema_data(data, str(p)))


def validate_schema_data(data: Any, where: str) -> dict[str, Any]:
    """Check the shape of a schema file and fill in the optional keys; one-line errors.

    Returns the keyword arguments of :class:`SandboxSchema`; raises ConfigError naming
    ``where`` and the bad key.
    """

    def fail(msg: str) -> ConfigError:
        return ConfigError(f"{where}: {msg}; fix the sandbox schema")

    if not isinstance(data, dict):
        raise fail("expected a mapping with the keys 'lead_fields' and 'activity_types'")
    unknown = sorted(set(data) - {"lead_fields", "activity_types"})
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (allowed: lead_fields, activity_types)")
    for key in ("lead_fields", "activity_types"):
        if not isinstance(data.get(key), list):
            raise fail(f"{key!r} must be a list")

    def check_fields(fields: Any, loc: str, options_key: str, *, nested: bool) -> list[dict]:
        if not isinstance(fields, list):
            raise fail(f"{loc} must be a list")
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, f in enumerate(fields):
            floc = f"{loc}[{i}]"
            if (
                not isinstance(f, dict)
                or not isinstance(f.get("SchemaName"), str)
                or not f["SchemaName"].strip()
            ):
                raise fail(f"{floc} needs a non-empty string 'SchemaName'")
            name = f["SchemaName"]
            if name in seen:
                raise fail(f"{floc}: duplicate SchemaName {name!r}")
            seen.add(name)
            f = dict(f)
            f.setdefault("DisplayName", name)
            f.setdefault("DataType", "String")
            f.setdefault("IsMandatory", False)
            if not isinstance(f["DataType"], str):
                raise fail(f"{floc} ({name}): 'DataType' must be a string")
            if "MaxLength" in f and f["MaxLength"] not in ("", None):
                try:
                    int(str(f["MaxLength"]))
                except ValueError:
                    raise fail(f"{floc} ({name}): 'MaxLength' must be a whole number") from None
                f["MaxLength"] = str(f["MaxLength"])
            opts = f.get(options_key)
            if opts is not None and (
                not isinstance(opts, list) or any(option_value(o) is None for o in opts)
            ):
                raise fail(
                    f"{floc} ({name}): {options_key!r} must be a list of strings or "
                    "{Value, Text} objects"
                )
            if f["DataType"].lower() == "customobject":
                if nested:
                    raise fail(f"{floc} ({name}): custom field sets cannot be nested")
                f["Fields"] = check_fields(
                    f.get("Fields"), f"{floc}.Fields", options_key, nested=True
                )
            out.append(f)
        return out

    lead_fields = check_fields(data["lead_fields"], "lead_fields", "Options", nested=False)
    activity_types: list[dict[str, Any]] = []
    codes: set[int] = set()
    for i, t in enumerate(data["activity_types"]):
        loc = f"activity_types[{i}]"
        code = t.get("ActivityEvent") if isinstance(t, dict) else None
        if not isinstance(code, int) or isinstance(code, bool):
            raise fail(f"{loc} needs an integer 'ActivityEvent'")
        if code in codes:
            raise fail(f"{loc}: duplicate ActivityEvent {code}")
        codes.add(code)
        t = dict(t)
        t.setdefault("ActivityEventName", f"Activity_{code}")
        t.setdefault("DisplayName", t["ActivityEventName"])
        # Activity custom field sets nest one level, like the lead's.
        t["Fields"] = check_fields(t.get("Fields", []), f"{loc}.Fields", "OptionSet", nested=False)
        activity_types.append(t)
    return {"lead_fields": lead_fields, "activity_types": activity_types}


def option_value(option: Any) -> str | None:
    """The value of a dropdown option given as a string or a ``{Value, Text}`` object."""
    if isinstance(option, str):
        return option
    if isinstance(option, dict) and isinstance(option.get("Value"), str):
        return option["Value"]
    return None


def allowed_options(f: dict[str, Any], options_key: str) -> list[str] | None:
    """The allowed values of a dropdown field, or None if the field is not a dropdown."""
    opts = f.get(options_key) or []
    values: list[str] = []
    for o in opts:
        v = option_value(o)
        if v is not None:
            values.append(v)
        if isinstance(o, dict) and isinstance(o.get("Text"), str):
            values.append(o["Text"])
    if values:
        return values
    if str(f.get("DataType", "")).lower() in _DROPDOWN_TYPES:
        return []  # a dropdown with no options accepts nothing but empty
    return None


def is_custom_field_set(f: dict[str, Any]) -> bool:
    """Whether a schema field is a custom field set (``DataType: CustomObject``)."""
    return str(f.get("DataType", "")).lower() == "customobject"
