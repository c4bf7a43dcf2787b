"""Pydantic validation errors as one line naming each key and what it accepts."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from .schema import KeyedValueError, MappingFile

# Said after "missing" or a type error for these keys, so the user knows what to write.
_HINTS = {
    "version": "add 'version: 1' at the top of the file",
    "lead": "add a 'lead:' section with search_by and attributes",
    "lead.search_by": "the attribute LeadSquared finds the lead by, e.g. EmailAddress",
    "lead.attributes": "map at least the search_by attribute, e.g. 'EmailAddress: email'",
    "activity": "add an 'activity:' section with at least 'event'",
    "activity.event": "the activity type code, e.g. 105",
    "activity.datetime.format": "one strptime format or a list, e.g. '%d/%m/%Y %H:%M'",
    "activity.datetime.empty": "an empty date-time is always left out, never sent blank",
    "filters.skip_if": "a list of conditions such as {column: status, equals: test}",
}


# Said after "unknown key" for (parent key, key) pairs that are a likely mix-up.
_EXTRA_KEY_HINTS = {
    ("date", "timezone"): (
        " (a date is sent as written, never converted; use datetime: to convert a date-time "
        "from a time zone to UTC)"
    ),
}


def _dotted(loc: tuple[int | str, ...]) -> str:
    """('filters', 'skip_if', 0, 'column') -> 'filters.skip_if[0].column'."""
    text = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _model_field(model: type[BaseModel], name: str) -> Any:
    """The field pydantic reported as ``name`` (errors use aliases, e.g. 'in' for in_)."""
    for field_name, field in model.model_fields.items():
        if (field.alias or field_name) == name:
            return field
    return None


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model at ``loc`` accepts: walks the schema the way pydantic walked the data."""

    def unwrap(node: Any) -> Any:
        if typing.get_origin(node) in (typing.Union, types.UnionType):
            return next(arg for arg in typing.get_args(node) if arg is not type(None))
        return node

    node: Any = MappingFile
    for part in loc:
        node = unwrap(node)
        origin = typing.get_origin(node)
        if origin is dict:
            node = typing.get_args(node)[1]
        elif origin in (list, tuple) and isinstance(part, int):
            node = typing.get_args(node)[0]
        elif isinstance(node, type) and issubclass(node, BaseModel):
            field = _model_field(node, str(part))
            if field is None:
                return []
            node = field.annotation
        else:
            return []
    node = unwrap(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return [field.alias or name for name, field in node.model_fields.items()]
    return []


def _describe(error: Any) -> str:
    """One pydantic error as '<dotted.key>: <what is wrong; what is allowed>'."""
    loc = tuple(error["loc"])
    kind = error["type"]
    key = _dotted(loc)
    hint = _HINTS.get(key)
    if kind == "extra_forbidden":
        parent = loc[:-1]
        allowed = ", ".join(_allowed_keys(parent))
        where = f" in {_dotted(parent)}" if parent else " at the top level"
        extra = _EXTRA_KEY_HINTS.get((str(parent[-1]) if parent else "", str(loc[-1])), "")
        return f"{key}: unknown key {loc[-1]!r}{where}; allowed: {allowed}{extra}"
    if loc and loc[-1] == "[key]":
        return f"{key}: names must be text; quote it"
    if kind == "missing":
        what = "missing"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        what = "must be an integer"
    elif kind in ("bool_type", "bool_parsing"):
        what = "must be true or false"
    elif kind == "literal_error":
        what = f"must be {error['ctx']['expected']}"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        what = "must be a mapping of key: value lines"
    elif kind == "list_type":
        what = "must be a list"
    elif kind == "string_type":
        what = "must be text"
    elif kind == "too_short":
        what = "must not be empty"
    elif kind == "value_error":
        raised = error["ctx"]["error"]
        what = str(raised)
        if isinstance(raised, KeyedValueError):
            key = f"{key}.{raised.key}" if key else raised.key
        hint = None
    else:
        what = error["msg"]
    if hint:
        what = f"{what} ({hint})" if kind != "missing" else f"{what}; {hint}"
    return f"{key}: {what}" if key else what


def validation_message(label: str, exc: ValidationError) -> str:
    problems = [_describe(error) for error in exc.errors()]
    shown = "; ".join(problems[:5])
    more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
    return f"{label}: {shown}{more}"
