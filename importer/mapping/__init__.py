"""Column mapping: a YAML file that says how one input row becomes one CreateCustom request body.

The mapping is validated once, at load time, with pydantic models, and then compiled into small
objects (column readers, pre-split templates, transform chains, value maps, date-time
converters, row filters) so that :meth:`Mapping.build` does no parsing and no pydantic work per
row: a million-row file is checked at over a hundred thousand rows a second. The language is
documented in ``mappings/README.md``.

Example::

    mapping = load_mapping("mappings/example.yaml")
    mapping.check_columns(header, "leads.csv")     # MappingError naming every missing column
    payload = mapping.build(row)                   # RowError: invalid row; RowSkipped: filtered
    json.dumps(payload.body)
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from ..exceptions import MappingError

if TYPE_CHECKING:
    from ..reader import Row

__all__ = ["Mapping", "MappingError", "Payload", "RowError", "RowSkipped", "load_mapping"]


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True, slots=True)
class Payload:
    """One row, ready to send.

    ``key`` is the row's SearchBy value normalised for comparison (casefolded e-mail or lead
    id, digits of a phone number): the sender keeps two rows with the same key out of flight
    together, because two concurrent upserts of one new lead can create it twice.
    """

    row: int
    key: str
    body: dict[str, Any]


class RowError(Exception):
    """This row cannot be mapped: it is recorded as ``invalid`` and the run goes on.

    ``column`` is the input column to fix, when there is exactly one.
    """

    def __init__(self, message: str, column: str | None = None) -> None:
        self.column = column
        self.message = message
        super().__init__(f"column '{column}': {message}" if column is not None else message)


class RowSkipped(Exception):
    """A ``filters.skip_if`` condition matched: the row is recorded as ``skipped``, not sent.

    Deliberately not a :class:`RowError`: a skipped row is the user's choice, not a fault to
    fix, so it must not count as invalid nor be retried on resume as if it were.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# --------------------------------------------------------------------------- schema (pydantic)

_TIME_ZONE_HINT = "use an IANA name such as Asia/Kolkata, America/New_York or UTC"
_SPEC_KEYS = "column, value or template"


def _text(value: Any, info: Any) -> Any:
    """Accept text, and integers as text; refuse what YAML silently turns into something else."""
    if value is None or isinstance(value, str):
        if value == "" and info.field_name in ("column", "template"):
            raise ValueError("must not be empty")
        return value
    return _scalar_text(value, "")


def _scalar_text(value: Any, what: str) -> str:
    """A YAML scalar as the text the user wrote, or ValueError when YAML changed its meaning."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, bool):
        problem = f"YAML read this as {str(value).lower()}; quote it if you meant text"
    elif isinstance(value, float):
        problem = f"YAML read this as the number {value}; quote it to keep it as written"
    elif value is None:
        problem = 'is empty; write "" for an empty text'
    else:
        problem = "must be text"
    raise ValueError(f"{what}: {problem}" if what else problem)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; {_TIME_ZONE_HINT}") from None


def _check_zone(name: str | None) -> str | None:
    if name is not None:
        _zone(name)
    return name


def _one_or_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _check_formats(formats: list[str]) -> list[str]:
    for fmt in formats:
        _check_format(fmt)
    return formats


_DATE_DIRECTIVES = re.compile(r"%[Yy]|%[cx]")


def _check_format(fmt: str) -> None:
    """Refuse formats strptime cannot use, and the common 'dd/mm/yyyy' mistake."""
    if not _DATE_DIRECTIVES.search(fmt.replace("%%", "")):
        raise ValueError(
            f"format {fmt!r} has no year directive; write it with strptime codes, "
            "e.g. '%d/%m/%Y %H:%M' or '%Y-%m-%d'"
        )
    sample = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
    try:
        datetime.strptime(sample.strftime(fmt), fmt)
    except (ValueError, re.error) as exc:  # re.error: a directive given twice
        raise ValueError(
            f"format {fmt!r} cannot be used by strptime ({exc}); see "
            "https://docs.python.org/3/library/datetime.html#format-codes"
        ) from None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- transforms

_NOT_DIGITS = re.compile(r"[^0-9]")


def _digits(text: str) -> str:
    return _NOT_DIGITS.sub("", text)


_SIMPLE_TRANSFORMS: dict[str, Callable[[str], str]] = {
    "strip": str.strip,
    "lower": str.lower,
    "upper": str.upper,
    "title": str.title,
    "digits": _digits,
}
_TRANSFORM_OPTIONS = {
    "phone": ("default_country_code", "national_length"),
    "number": ("decimals", "decimal"),
}
_TRANSFORM_NAMES = ", ".join([*_SIMPLE_TRANSFORMS, *_TRANSFORM_OPTIONS])

# E.164 country calling codes are prefix-free: 1 and 7 stand alone, these two-digit codes
# stand alone, and every other code is three digits. That is enough to split '+919845098450'
# into 91 and 9845098450 without a table of every country.
_TWO_DIGIT_CODES = frozenset(
    {
        "20",
        "27",
        "30",
        "31",
        "32",
        "33",
        "34",
        "36",
        "39",
        "40",
        "41",
        "43",
        "44",
        "45",
        "46",
        "47",
        "48",
        "49",
        "51",
        "52",
        "53",
        "54",
        "55",
        "56",
        "57",
        "58",
        "60",
        "61",
        "62",
        "63",
        "64",
        "65",
        "66",
        "81",
        "82",
        "84",
        "86",
        "90",
        "91",
        "92",
        "93",
        "94",
        "95",
        "98",
    }
)


def _country_code_length(digits: str) -> int | None:
    """How many leading digits of an international number are its country code."""
    if not digits or digits[0] == "0":
        return None
    if digits[0] in "17":
        return 1
    return 2 if digits[:2] in _TWO_DIGIT_CODES else 3


@dataclass(frozen=True, slots=True)
class _Step:
    """One transform: its name and its options, as checked at load time."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)


def _int_option(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{where}: must be a whole number from {low} to {high}")
    return value


def _phone_options(options: dict[str, Any]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    code = options.get("default_country_code")
    if code is not None:
        text = _scalar_text(code, "phone.default_country_code").strip().removeprefix("+")
        if not (text.isascii() and text.isdigit()) or _country_code_length(text) != len(text):
            raise ValueError(
                f"phone.default_country_code: {code!r} is not a country calling code; write "
                'it without + or 00, e.g. "91" (India), "1" (US, Canada) or "44" (UK)'
            )
        checked["default_country_code"] = text
    if options.get("national_length") is not None:
        where = "phone.national_length"
        checked["national_length"] = _int_option(options["national_length"], where, 4, 14)
    return checked


def _number_options(options: dict[str, Any]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    if options.get("decimals") is not None:
        checked["decimals"] = _int_option(options["decimals"], "number.decimals", 0, 10)
    if options.get("decimal") is not None:
        if options["decimal"] not in (".", ","):
            raise ValueError("number.decimal: must be '.' or ','")
        checked["decimal"] = options["decimal"]
    return checked


def _parse_step(item: Any) -> _Step:
    if isinstance(item, str):
        name, options = item, None
    elif isinstance(item, dict) and len(item) == 1:
        ((name, options),) = item.items()
    else:
        raise ValueError(
            f"each transform is a name ({_TRANSFORM_NAMES}) or a name with options, "
            'e.g. {phone: {default_country_code: "91"}}'
        )
    if name in _SIMPLE_TRANSFORMS:
        if options is not None:
            raise ValueError(f"transform {name!r} takes no options; write just {name}")
        return _Step(name)
    if name not in _TRANSFORM_OPTIONS:
        raise ValueError(f"unknown transform {name!r}; allowed: {_TRANSFORM_NAMES}")
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise ValueError(f"{name}: its options must be a mapping, e.g. {{{name}: {{...}}}}")
    allowed = _TRANSFORM_OPTIONS[name]
    unknown = [str(key) for key in options if key not in allowed]
    if unknown:
        raise ValueError(f"{name}: unknown option {unknown[0]!r}; allowed: {', '.join(allowed)}")
    checked = _phone_options(options) if name == "phone" else _number_options(options)
    return _Step(name, tuple(checked.items()))


def _parse_transforms(value: Any) -> tuple[_Step, ...]:
    if value is None:
        raise ValueError(f"is empty; give one of {_TRANSFORM_NAMES}, or a list of them")
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError("must not be empty")
    return tuple(_parse_step(item) for item in items)


def _parse_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(
            "must be a mapping of 'value in the file: value to send' lines, "
            'e.g. {Y: "Yes", N: "No"}'
        )
    if not value:
        raise ValueError("must not be empty")
    table: dict[str, str] = {}
    for key, sent in value.items():
        if isinstance(key, bool):
            raise ValueError(
                f"YAML read a key as {str(key).lower()} (from yes/no, on/off or "
                "true/false); quote it, e.g. 'yes': ..."
            )
        text = _scalar_text(key, "a key").strip()
        table[text] = _scalar_text(sent, f"the value for {text!r}")
    return table


# ---- values


class _BaseSpec(_Model):
    """A value: exactly one of column, value or template, plus what to do when it is empty,
    and the transforms and value map applied to it."""

    column: str | None = None
    value: str | None = None
    template: str | None = None
    default: str | None = None
    required: StrictBool = False
    empty: Literal["omit", "send"] = "omit"
    transform: tuple[_Step, ...] = ()
    map: dict[str, str] | None = None
    unmapped: Literal["error", "keep", "empty"] = "error"
    map_case: Literal["sensitive", "insensitive"] = "sensitive"

    _check_text = field_validator("column", "value", "template", "default", mode="before")(_text)
    _check_transform = field_validator("transform", mode="before")(_parse_transforms)
    _check_map = field_validator("map", mode="before")(_parse_map)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str | int) and not isinstance(data, bool):
            return {"column": str(data)}  # `FirstName: first_name`
        if data is None:
            raise ValueError(f"is empty; give a column name or a mapping with one of {_SPEC_KEYS}")
        if not isinstance(data, dict):
            raise ValueError(f"must be a column name or a mapping with one of {_SPEC_KEYS}")
        return data

    @field_validator("template")
    @classmethod
    def _check_template(cls, template: str | None) -> str | None:
        if template is not None:
            _split_template(template)
        return template

    @model_validator(mode="after")
    def _exactly_one(self) -> _BaseSpec:
        self._check_sources(self.column, self.value, self.template)
        self._check_map_options()
        return self

    def _check_sources(self, *sources: object, what: str = _SPEC_KEYS) -> None:
        if sum(source is not None for source in sources) != 1:
            raise ValueError(f"give exactly one of {what}")

    def _check_map_options(self) -> None:
        if self.map is None:
            orphans = [key for key in ("unmapped", "map_case") if key in self.model_fields_set]
            if orphans:
                raise ValueError(f"{orphans[0]} only applies with map; add a map or remove it")
        elif self.map_case == "insensitive":
            folded: dict[str, str] = {}
            for key, sent in self.map.items():
                other = folded.setdefault(key.casefold(), sent)
                if other != sent:
                    raise ValueError(
                        f"map: keys that differ only in case map to different values "
                        f"({key!r}); with map_case: insensitive they are the same key"
                    )


class _DateSpec(_Model):
    """``date:`` on a value: parse with ``format``, send the date as ``YYYY-MM-DD``."""

    format: list[str] = Field(min_length=1)

    _format_list = field_validator("format", mode="before")(_one_or_list)
    _format_check = field_validator("format")(_check_formats)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"format": data} if isinstance(data, str | list) else data  # `date: "%d/%m/%Y"`


class _DatetimeOptions(_DateSpec):
    """``datetime:`` on a value: parse with ``format`` in ``timezone``, send it in UTC."""

    timezone: str | None = None

    _zone_check = field_validator("timezone")(_check_zone)


class _Spec(_BaseSpec):
    """A value that may also be a date or a date-time (any value but the activity date-time)."""

    date: _DateSpec | None = None
    datetime: _DatetimeOptions | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> _Spec:
        if self.date is not None and self.datetime is not None:
            raise ValueError("give date or datetime, not both")
        return self


class _AttributeSpec(_Spec):
    """A lead attribute or activity field: a value, or a custom field set (``fields``)."""

    fields: dict[str, _Spec] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> _AttributeSpec:
        self._check_sources(
            self.column,
            self.value,
            self.template,
            self.fields,
            what="column, value, template or fields",
        )
        self._check_map_options()
        if self.fields is not None and self.model_fields_set - {"fields"}:
            raise ValueError(
                "a custom field set takes only fields; put default, required, empty, "
                "transform, map, date or datetime on its fields"
            )
        return self


class _DatetimeSpec(_BaseSpec):
    """The activity date-time: a value parsed with ``format`` in ``timezone``, sent in UTC."""

    format: list[str] = Field(min_length=1)
    timezone: str | None = None
    # An empty date-time is always left out (LeadSquared then stamps the activity itself);
    # sending "" would only be rejected.
    empty: Literal["omit"] = "omit"

    _format_list = field_validator("format", mode="before")(_one_or_list)
    _format_check = field_validator("format")(_check_formats)
    _zone_check = field_validator("timezone")(_check_zone)


# ---- filters


class _Condition(_Model):
    """One ``filters.skip_if`` test on one column's (trimmed) cell."""

    column: str
    equals: str | None = None
    in_: list[str] | None = Field(default=None, alias="in", min_length=1)
    matches: str | None = None
    empty: StrictBool | None = None
    case: Literal["sensitive", "insensitive"] = "sensitive"
    reason: str | None = None

    _check_text = field_validator("column", "equals", "reason", mode="before")(_text)

    @field_validator("in_", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_scalar_text(item, f"item {i + 1}") for i, item in enumerate(value)]
        return value

    @field_validator("matches")
    @classmethod
    def _check_regex(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"{pattern!r} is not a regular expression ({exc}); quote it in single "
                    "quotes so YAML keeps backslashes"
                ) from None
        return pattern

    @model_validator(mode="after")
    def _one_test(self) -> _Condition:
        tests = (self.equals, self.in_, self.matches, self.empty)
        if sum(test is not None for test in tests) != 1:
            raise ValueError("give exactly one of equals, in, matches or empty")
        return self


class _Filters(_Model):
    skip_if: list[_Condition] = Field(default_factory=list)


# ---- file


class _Source(_Model):
    timezone: str | None = None

    _zone_check = field_validator("timezone")(_check_zone)


class _Lead(_Model):
    search_by: str
    attributes: dict[str, _AttributeSpec] = Field(min_length=1)


class _Activity(_Model):
    event: StrictInt
    note: _Spec | None = None
    datetime: _DatetimeSpec | None = None
    fields: dict[str, _AttributeSpec] = Field(default_factory=dict)


class _Options(_Model):
    validate_dropdown_options: StrictBool = False
    activity_cfs_key: Literal["Attribute", "SchemaName"] = "Attribute"


class _MappingFile(_Model):
    version: Literal[1]
    source: _Source = Field(default_factory=_Source)
    filters: _Filters = Field(default_factory=_Filters)
    lead: _Lead
    activity: _Activity
    options: _Options = Field(default_factory=_Options)


# --------------------------------------------------------------------------- error messages

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

    node: Any = _MappingFile
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
        what = str(error["ctx"]["error"])
        hint = None
    else:
        what = error["msg"]
    if hint:
        what = f"{what} ({hint})" if kind != "missing" else f"{what}; {hint}"
    return f"{key}: {what}" if key else what


def _validation_message(label: str, exc: ValidationError) -> str:
    problems = [_describe(error) for error in exc.errors()]
    shown = "; ".join(problems[:5])
    more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
    return f"{label}: {shown}{more}"


# --------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """safe_load, but a key given twice is an error instead of silently dropping the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key_node.value!r}; each key may appear once",
                        key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, label: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MappingError(
            f"{label}: mapping file not found; check the path (mappings/example.yaml is a "
            "template to copy)"
        ) from None
    except IsADirectoryError:
        raise MappingError(f"{label}: is a directory; give the mapping YAML file") from None
    except UnicodeDecodeError as exc:
        raise MappingError(
            f"{label}: not UTF-8 text (byte {exc.start}); save the mapping file as UTF-8"
        ) from None
    except OSError as exc:
        raise MappingError(f"{label}: cannot read the mapping file: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "cannot parse"
        raise MappingError(f"{label}: {where}YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"{label}: YAML syntax error: {exc}") from None


# --------------------------------------------------------------------------- compiled form


def _split_template(template: str) -> list[tuple[bool, str]]:
    """Split a template into (is_column, text) parts; ``{{`` and ``}}`` are literal braces.

    Column names are taken verbatim between the braces (spaces, dots and colons included),
    which is why this is not ``str.format`` syntax.
    """
    parts: list[tuple[bool, str]] = []
    literal: list[str] = []
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch == "{":
            if template.startswith("{{", i):
                literal.append("{")
                i += 2
                continue
            end = template.find("}", i + 1)
            inner = template[i + 1 : end] if end != -1 else ""
            if end == -1 or "{" in inner:
                raise ValueError(
                    f"unclosed '{{' at position {i + 1} of {template!r}; "
                    "write '{{' for a literal brace"
                )
            if not inner:
                raise ValueError(
                    f"empty '{{}}' at position {i + 1} of {template!r}; put a column name inside"
                )
            if literal:
                parts.append((False, "".join(literal)))
                literal = []
            parts.append((True, inner))
            i = end + 1
        elif ch == "}":
            if not template.startswith("}}", i):
                raise ValueError(
                    f"unmatched '}}' at position {i + 1} of {template!r}; "
                    "write '}}' for a literal brace"
                )
            literal.append("}")
            i += 2
        else:
            literal.append(ch)
            i += 1
    if literal:
        parts.append((False, "".join(literal)))
    return parts


def _show(text: str) -> str:
    """A cell value quoted for a one-line message."""
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:76] + "...'"


Getter = Callable[[dict[str, str]], str]


def _column_getter(column: str) -> Getter:
    def get(values: dict[str, str]) -> str:
        return values.get(column, "").strip()

    return get


def _constant_getter(constant: str) -> Getter:
    def get(values: dict[str, str]) -> str:
        return constant

    return get


def _template_getter(parts: list[tuple[bool, str]]) -> Getter:
    columns = tuple(dict.fromkeys(text for is_column, text in parts if is_column))
    # Re-express as a positional str.format pattern: rendering is then one C call per row.
    pattern = "".join(
        f"{{{columns.index(text)}}}" if is_column else text.replace("{", "{{").replace("}", "}}")
        for is_column, text in parts
    )

    def get(values: dict[str, str]) -> str:
        cells = [values.get(column, "").strip() for column in columns]
        # All referenced cells empty -> the value is empty, so default/required/omit apply
        # instead of sending the template's bare punctuation.
        if not any(cells):
            return ""
        return pattern.format(*cells).strip()

    return get


# strptime's own regexes for these directives (CPython's _strptime.TimeRE): a format made of
# only these is parsed by _fast_parser, several times faster than strptime, same results.
_FAST_DIRECTIVES = {
    "Y": r"(\d\d\d\d)",
    "m": r"(1[0-2]|0[1-9]|[1-9])",
    "d": r"(3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])",
    "H": r"(2[0-3]|[0-1]\d|\d)",
    "M": r"([0-5]\d|\d)",
    "S": r"(6[0-1]|[0-5]\d|\d)",
}
_FAST_FIELDS = {"Y": "year", "m": "month", "d": "day", "H": "hour", "M": "minute", "S": "second"}


def _fast_parser(fmt: str) -> Callable[[str], datetime | None] | None:
    """A strptime equivalent for numeric formats such as '%d/%m/%Y %H:%M', or None.

    Mirrors strptime: literals match case-insensitively, a whitespace run matches any
    whitespace run, the match must start at the beginning and end at the end, and an
    out-of-range value (31 February) is no match.
    """
    pattern: list[str] = []
    fields: list[str] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%":
            directive = fmt[i + 1 : i + 2]
            if directive == "%":
                pattern.append("%")
            elif directive in _FAST_DIRECTIVES and _FAST_FIELDS[directive] not in fields:
                pattern.append(_FAST_DIRECTIVES[directive])
                fields.append(_FAST_FIELDS[directive])
            else:
                return None
            i += 2
        elif ch.isspace():
            while i < len(fmt) and fmt[i].isspace():
                i += 1
            pattern.append(r"\s+")
        else:
            pattern.append(re.escape(ch))
            i += 1
    if "year" not in fields:
        return None
    regex = re.compile("".join(pattern), re.IGNORECASE)
    # Positions in groups() + ("1", "0") of year, month, day, hour, minute, second: a field
    # the format lacks takes strptime's default (month and day 1, time 0).
    defaults = {"month": -2, "day": -2}
    picks = [
        fields.index(name) if name in fields else defaults.get(name, -1)
        for name in ("year", "month", "day", "hour", "minute", "second")
    ]

    def parse(text: str) -> datetime | None:
        found = regex.match(text)
        if found is None or found.end() != len(text):
            return None
        groups = (*found.groups(), "1", "0")
        try:
            return datetime(*[int(groups[pick]) for pick in picks])
        except ValueError:
            return None

    return parse


def _strptime_parser(fmt: str) -> Callable[[str], datetime | None]:
    def parse(text: str) -> datetime | None:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            return None

    return parse


# ---- converters: each turns a non-empty text into the text to send, or raises RowError


Converter = Callable[[str], str]
Fail = Callable[[str], RowError]

# A cache of results per distinct text is bounded: a file of unique values must not grow it
# without limit.
_CACHE_LIMIT = 100_000
_TWO_DIGIT_YEAR = re.compile(r"\d{1,2}[^\d\s]\d{1,2}[^\d\s]\d{2}(?!\d)")


def _date_parser(formats: list[str]) -> Callable[[str], datetime | None]:
    parsers = [_fast_parser(fmt) or _strptime_parser(fmt) for fmt in formats]
    if len(parsers) == 1:
        return parsers[0]

    def parse(text: str) -> datetime | None:
        for parser in parsers:
            parsed = parser(text)
            if parsed is not None:
                return parsed
        return None

    return parse


def _unparsed(text: str, formats: list[str]) -> str:
    shown = ", ".join(formats)
    tried = f"with format {shown}" if len(formats) == 1 else f"with any of the formats {shown}"
    message = f"cannot parse {_show(text)} {tried}"
    uses_short_year = any("%y" in fmt.replace("%%", "") for fmt in formats)
    if not uses_short_year and not re.search(r"\d{4}", text) and _TWO_DIGIT_YEAR.search(text):
        # strptime's %Y wants four digits, so '01/05/24' is refused rather than read as year 24.
        message += (
            "; it looks like a two-digit year, which %Y does not accept: write the year in "
            "full, or use %y in the format if two-digit years are intended"
        )
    return message


def _datetime_converter(formats: list[str], zone: ZoneInfo, fail: Fail) -> Converter:
    """Parse local text with the first matching format; return UTC 'YYYY-MM-DD HH:MM:SS'.

    Files repeat date-times a lot (one import batch, one event day), so results are cached per
    distinct text. A nonexistent local time (spring-forward gap) is read with the offset in
    force before the change, an ambiguous one (fall-back) as its first occurrence (zoneinfo's
    fold=0): such a row is at worst an hour off, which beats rejecting it.
    """
    cache: dict[str, str] = {}
    parse = _date_parser(formats)

    def convert(text: str) -> str:
        result = cache.get(text)
        if result is not None:
            return result
        parsed = parse(text)
        if parsed is None:
            raise fail(_unparsed(text, formats))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone)
        # isoformat zero-pads the year (strftime('%Y') does not before 1000 on glibc); the
        # first 19 characters drop microseconds and the '+00:00'.
        result = parsed.astimezone(UTC).isoformat(" ")[:19]
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[text] = result
        return result

    return convert


def _date_converter(formats: list[str], fail: Fail) -> Converter:
    """Parse with the first matching format; return the date as written, 'YYYY-MM-DD'.

    No time zone is involved on purpose: a date of birth or a due date is a calendar day, and
    converting its midnight to UTC would move it to the previous day east of Greenwich.
    """
    cache: dict[str, str] = {}
    parse = _date_parser(formats)

    def convert(text: str) -> str:
        result = cache.get(text)
        if result is not None:
            return result
        parsed = parse(text)
        if parsed is None:
            raise fail(_unparsed(text, formats))
        result = parsed.date().isoformat()
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[text] = result
        return result

    return convert


# Country codes whose fixed-length numbering plans let us check the length and recognise a
# number written with its country code but without the '+' ('919845098450').
_NATIONAL_LENGTHS = {"1": 10, "91": 10}
# Where a leading 0 is part of the number, not a trunk prefix to drop (Italy, San Marino,
# Vatican City).
_NO_TRUNK_PREFIX = frozenset({"39", "378", "379"})
_MIN_NATIONAL_DIGITS = 6
_MAX_PHONE_DIGITS = 15  # E.164
_PHONE_SEPARATORS = re.compile(r"[\s\-./()]")


def _cached(convert: Converter) -> Converter:
    """Remember results per distinct text: amounts and a lead's phone repeat across rows."""
    cache: dict[str, str] = {}

    def cached(text: str) -> str:
        result = cache.get(text)
        if result is None:
            result = convert(text)
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[text] = result
        return result

    return cached


def _phone_converter(step: _Step, fail: Fail) -> Converter:
    """Normalise to LeadSquared's '+<country code>-<national number>' ('+91-9845098450')."""
    default_code: str | None = step.option("default_country_code")
    lengths = dict(_NATIONAL_LENGTHS)
    if default_code is not None and step.option("national_length") is not None:
        lengths[default_code] = step.option("national_length")

    def convert(text: str) -> str:
        # '+44 (0)20 ...': the bracketed 0 is the trunk prefix, dialled only nationally.
        compact = _PHONE_SEPARATORS.sub("", text.replace("(0)", ""))
        international = compact.startswith("+")
        digits = compact[1:] if international else compact
        if not (digits.isascii() and digits.isdigit()):
            raise fail(
                f"{_show(text)} is not a phone number: only digits, a leading +, spaces, "
                "dashes, dots and parentheses are allowed"
            )
        if not international and digits.startswith("00"):  # international dialling prefix
            international, digits = True, digits[2:]
        if international:
            length = _country_code_length(digits)
            if length is None:
                raise fail(f"{_show(text)} is not a phone number: no country code after the +")
            code, national = digits[:length], digits[length:]
        elif default_code is None:
            raise fail(
                f"{_show(text)} has no country code; write it as +<code> <number>, or give "
                "the phone transform a default_country_code"
            )
        else:
            code, national = default_code, digits
            expected = lengths.get(code)
            if expected and len(digits) == len(code) + expected and digits.startswith(code):
                national = digits[len(code) :]  # written with its country code, without '+'
            elif national.startswith("0") and code not in _NO_TRUNK_PREFIX:
                national = national[1:]  # the trunk prefix
        expected = lengths.get(code)
        if expected is not None and len(national) != expected:
            raise fail(
                f"{_show(text)} is not a +{code} phone number: {len(national)} digits after "
                f"the country code, expected {expected}"
            )
        if len(national) < _MIN_NATIONAL_DIGITS:
            raise fail(
                f"{_show(text)} is not a phone number: too few digits ({len(national)} after "
                f"the country code, at least {_MIN_NATIONAL_DIGITS})"
            )
        if len(code) + len(national) > _MAX_PHONE_DIGITS:
            raise fail(
                f"{_show(text)} is not a phone number: too many digits "
                f"(at most {_MAX_PHONE_DIGITS} with the country code)"
            )
        return f"+{code}-{national}"

    return convert


def _number_converter(step: _Step, fail: Fail) -> Converter:
    """Read a number written with thousands separators; send it with '.' and no grouping.

    A separator is accepted as a thousands separator only where one can stand (groups of
    three, or the Indian 1,49,999), so '1,5' is refused rather than read as 15.
    """
    decimals: int | None = step.option("decimals")
    point: str = step.option("decimal", ".")
    grouping = ("," if point == "." else ".") + " '\u00a0\u202f"
    sep = f"[{re.escape(grouping)}]"
    pattern = re.compile(
        rf"([+-]?)(\d+|\d{{1,3}}({sep})(?:\d{{2,3}}\3)*\d{{3}})?(?:{re.escape(point)}(\d*))?",
        re.ASCII,
    )
    quantum = Decimal(1).scaleb(-decimals) if decimals is not None else None
    comma_hint = (
        "if the file writes decimals with a comma, add decimal: ',' to the number transform"
    )

    def convert(text: str) -> str:
        found = pattern.fullmatch(text)
        if found is None or not (found[2] or found[4]):
            raise fail(
                f"{_show(text)} is not a number (decimal separator {point!r}, thousands "
                f"separated by {grouping[0]!r}, a space or an apostrophe); "
                f"{comma_hint if point == '.' and ',' in text else 'fix the cell'}"
            )
        sign, whole, separator, fraction = found.groups()
        whole = (whole or "0").replace(separator, "") if separator else (whole or "0")
        number = Decimal(f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}")
        if quantum is not None:
            try:
                number = number.quantize(quantum, rounding=ROUND_HALF_UP)
            except InvalidOperation:
                raise fail(f"{_show(text)} is too large a number") from None
        if number == 0:
            number = abs(number)  # no '-0.00'
        return format(number, "f")

    return convert


def _map_converter(spec: _BaseSpec, key: str, fail: Fail) -> Converter:
    """Look the value up in the mapping's ``map``; what to do when it is not there."""
    assert spec.map is not None
    fold = spec.map_case == "insensitive"
    table = {(k.casefold() if fold else k): v for k, v in spec.map.items()}
    keys = list(spec.map)
    allowed = ", ".join(repr(k) for k in keys[:20]) + (", ..." if len(keys) > 20 else "")
    unmapped = spec.unmapped

    def convert(text: str) -> str:
        found = table.get(text.casefold() if fold else text)
        if found is not None:
            return found
        if unmapped == "keep":
            return text
        if unmapped == "empty":
            return ""
        raise fail(
            f"{_show(text)} is not in the map of {key}; allowed: {allowed}; add it to the map, "
            "or set unmapped: keep or empty"
        )

    return convert


def _converter(spec: _BaseSpec, key: str, fail: Fail, source_zone: str | None) -> Converter | None:
    """The whole chain for one value: transforms in order, then the map, then date parsing."""
    steps: list[Converter] = []
    for step in spec.transform:
        if step.name == "phone":
            steps.append(_cached(_phone_converter(step, fail)))
        elif step.name == "number":
            steps.append(_cached(_number_converter(step, fail)))
        else:
            steps.append(_SIMPLE_TRANSFORMS[step.name])
    if spec.map is not None:
        steps.append(_map_converter(spec, key, fail))
    if isinstance(spec, _DatetimeSpec):
        zone = ZoneInfo(spec.timezone or source_zone or "UTC")
        steps.append(_datetime_converter(spec.format, zone, fail))
    elif isinstance(spec, _Spec) and spec.datetime is not None:
        zone = ZoneInfo(spec.datetime.timezone or source_zone or "UTC")
        steps.append(_datetime_converter(spec.datetime.format, zone, fail))
    elif isinstance(spec, _Spec) and spec.date is not None:
        steps.append(_date_converter(spec.date.format, fail))
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]

    def chain(text: str) -> str:
        for each in steps:
            text = each(text)
            if not text:  # e.g. mapped to "": the empty rules apply, nothing left to parse
                return ""
        return text

    return chain


class _CompileError(Exception):
    """A default or constant the mapping's own transforms, map or formats refuse."""


_REQUIRED = "it is marked required; fill it in, or give it a default in the mapping"


class _Value:
    """A compiled value spec. ``resolve(values)`` gives the text to send, or None to omit it.

    ``resolve`` is a closure specialised at load time: the common case (a column, no default,
    omitted when empty) is one dict lookup and one strip per row. Defaults and constants are
    converted once, here, so a bad one is a mapping error rather than a failure on every row.
    """

    __slots__ = ("key", "columns", "column", "simple", "resolve")

    def __init__(self, key: str, spec: _BaseSpec, source_zone: str | None = None) -> None:
        self.key = key
        # The one column to blame in a RowError; a template's columns are named in the message.
        self.column = column = spec.column

        def row_fail(message: str) -> RowError:
            return (
                RowError(message, column) if column is not None else RowError(f"{key}: {message}")
            )

        convert = _converter(spec, key, row_fail, source_zone)
        constant: str | None = None
        if spec.column is not None:
            self.columns: tuple[str, ...] = (spec.column,)
            get = _column_getter(spec.column)
        elif spec.template is not None:
            parts = _split_template(spec.template)
            self.columns = tuple(dict.fromkeys(text for is_column, text in parts if is_column))
            if self.columns:
                get = _template_getter(parts)
            else:  # only literal text: a constant, with {{ and }} already unescaped
                constant = "".join(text for _, text in parts).strip()
        else:
            self.columns = ()
            constant = spec.value or ""
        default = self._at_load(spec, spec.default or "", key, ".default", source_zone)
        if spec.default and not default:
            raise _CompileError(
                f"{key}.default: {spec.default!r} becomes empty after its transform or map; "
                "give a default that maps to a value"
            )
        if constant is not None:
            get = _constant_getter(self._at_load(spec, constant, key, "", source_zone))
            convert = None
        required = spec.required
        send = spec.empty == "send"
        # A bare column, omitted when empty: callers inline it (see _entry).
        self.simple = spec.column is not None and not (default or required or send or convert)

        def resolve(values: dict[str, str]) -> str | None:
            raw = get(values)
            if raw:
                if convert is None:
                    return raw
                text = convert(raw)
                if text:
                    return text
            if default:
                return default
            if required:
                raise self.empty_error(_REQUIRED, raw)
            return "" if send else None

        self.resolve: Callable[[dict[str, str]], str | None] = resolve

    @staticmethod
    def _at_load(spec: _BaseSpec, text: str, key: str, suffix: str, zone: str | None) -> str:
        """Convert a default or constant now; its failure names the mapping key."""
        if not text:
            return text
        convert = _converter(spec, key, RowError, zone)
        if convert is None:
            return text
        try:
            return convert(text)
        except RowError as exc:
            raise _CompileError(f"{key}{suffix}: {exc.message}") from None

    def empty_error(self, why: str, raw: str = "") -> RowError:
        if raw:
            return RowError(
                f"{_show(raw)} becomes empty after its transform or map, but {self.key} needs "
                f"a value: {why}",
                self.column,
            )
        if self.column is not None:
            return RowError(f"empty, but {self.key} needs a value: {why}", self.column)
        if self.columns:
            names = ", ".join(f"'{column}'" for column in self.columns)
            return RowError(f"{self.key} needs a value, but columns {names} are all empty: {why}")
        return RowError(f"{self.key} needs a value, but its constant value is empty: {why}")


Entry = Callable[[dict[str, str]], "dict[str, Any] | None"]


def _entry(name_key: str, name: str, value: _Value) -> Entry:
    """A closure giving ``{name_key: name, "Value": text}`` for a row, or None to omit it."""
    if value.simple:
        column = value.columns[0]

        def simple_entry(values: dict[str, str]) -> dict[str, Any] | None:
            text = values.get(column, "").strip()
            return {name_key: name, "Value": text} if text else None

        return simple_entry
    resolve = value.resolve

    def entry(values: dict[str, str]) -> dict[str, Any] | None:
        text = resolve(values)
        return None if text is None else {name_key: name, "Value": text}

    return entry


def _field_set_entry(name_key: str, name: str, fields: list[tuple[str, _Value]]) -> Entry:
    """A custom field set's entry, ``{name_key: name, "Value": "", "Fields": [...]}``, whose
    fields use ``name_key`` too; None when all its fields are omitted."""
    entries = [_entry(name_key, sub, value) for sub, value in fields]

    def entry(values: dict[str, str]) -> dict[str, Any] | None:
        sub = [item for item in (each(values) for each in entries) if item is not None]
        return {name_key: name, "Value": "", "Fields": sub} if sub else None

    return entry


SkipTest = Callable[[dict[str, str]], None]


def _skip_test(index: int, condition: _Condition) -> SkipTest:
    """A closure raising RowSkipped when the condition holds for a row's (trimmed) cell."""
    column = condition.column
    where = f"filters.skip_if[{index}]"
    fold = condition.case == "insensitive"
    given = condition.reason

    def skip(why: str) -> RowSkipped:
        return RowSkipped(given or f"column '{column}' {why} ({where})")

    if condition.empty is not None:
        want_empty = condition.empty

        def test_empty(values: dict[str, str]) -> None:
            if (not values.get(column, "").strip()) == want_empty:
                raise skip("is empty" if want_empty else "is not empty")

        return test_empty
    if condition.matches is not None:
        pattern = re.compile(condition.matches, re.IGNORECASE if fold else 0)
        shown = condition.matches

        def test_matches(values: dict[str, str]) -> None:
            cell = values.get(column, "").strip()
            if pattern.search(cell):
                raise skip(f"({_show(cell)}) matches '{shown}'")

        return test_matches
    wanted = [condition.equals] if condition.equals is not None else list(condition.in_ or ())
    targets = frozenset(text.strip().casefold() if fold else text.strip() for text in wanted)

    def test_equals(values: dict[str, str]) -> None:
        cell = values.get(column, "").strip()
        if (cell.casefold() if fold else cell) in targets:
            raise skip(f"is {_show(cell)}")

    return test_equals


def _key_normaliser(search_by: str) -> Callable[[str], str]:
    """How two SearchBy values are compared to tell whether rows belong to one lead."""
    if search_by in ("Phone", "Mobile"):

        def digits(text: str) -> str:
            # '+91-98765 43210' and '+91 9876543210' are one lead; a value with no digits at
            # all keeps its own text rather than colliding with every other such value.
            return _NOT_DIGITS.sub("", text) or text

        return digits
    if search_by == "EmailAddress" or search_by == "ProspectId":
        return str.casefold  # e-mail lookups and lead ids (GUIDs) are case-insensitive
    return lambda text: text


# --------------------------------------------------------------------------- Mapping


class Mapping:
    """A loaded, validated and compiled mapping file. Build one with :func:`load_mapping`.

    Besides :meth:`build`, it tells a preflight check what it will send: ``activity_event``,
    ``lead_attributes`` (with ``lead_cfs_fields``), ``activity_fields`` (with
    ``activity_cfs_fields``) and ``validate_dropdown_options``.
    """

    def __init__(self, path: Path, label: str, model: _MappingFile) -> None:
        self.path = path
        self._label = label
        self.search_by: str = model.lead.search_by
        self.activity_event: int = model.activity.event
        self.validate_dropdown_options: bool = model.options.validate_dropdown_options
        self._key_of = _key_normaliser(self.search_by)
        zone = model.source.timezone

        # Every compiled value, in mapping order: for columns() and check_columns().
        self._all: list[_Value] = []
        # Lead entries before and after the search attribute, whose value build() resolves
        # first because an empty one rejects the row.
        self._lead_before: list[Entry] = []
        self._lead_after: list[Entry] = []
        self._lead_names: list[str] = []
        self.lead_cfs_fields: dict[str, tuple[str, ...]] = {}
        search: _Value | None = None
        for name, spec in model.lead.attributes.items():
            self._lead_names.append(name)
            key = f"lead.attributes.{name}"
            target = self._lead_before if search is None else self._lead_after
            if spec.fields is not None:
                self.lead_cfs_fields[name] = tuple(spec.fields)
                target.append(self._field_set("Attribute", name, key, spec.fields, zone))
            else:
                value = self._value(key, spec, zone)
                if name == self.search_by:
                    search = value
                else:
                    target.append(_entry("Attribute", name, value))
        assert search is not None  # load_mapping checked search_by
        self._search = search

        activity = model.activity
        self._note = self._value("activity.note", activity.note, zone) if activity.note else None
        self._datetime: _Value | None = None
        if activity.datetime is not None:
            self._datetime = self._value("activity.datetime", activity.datetime, zone)
        self._field_names: list[str] = []
        self.activity_cfs_fields: dict[str, tuple[str, ...]] = {}
        self._fields: list[Entry] = []
        # The one place that decides how a custom field set inside the activity is written.
        cfs_key = model.options.activity_cfs_key
        for name, spec in activity.fields.items():
            key = f"activity.fields.{name}"
            self._field_names.append(name)
            if spec.fields is not None:
                self.activity_cfs_fields[name] = tuple(spec.fields)
                self._fields.append(self._field_set(cfs_key, name, key, spec.fields, zone))
            else:
                self._fields.append(_entry("SchemaName", name, self._value(key, spec, zone)))

        self._filter_columns = [
            (condition.column, f"filters.skip_if[{i}]")
            for i, condition in enumerate(model.filters.skip_if)
        ]
        self._skip_tests = tuple(
            _skip_test(i, condition) for i, condition in enumerate(model.filters.skip_if)
        )

    def _value(self, key: str, spec: _BaseSpec, zone: str | None) -> _Value:
        value = _Value(key, spec, zone)
        self._all.append(value)
        return value

    def _field_set(
        self, name_key: str, name: str, key: str, fields: dict[str, _Spec], zone: str | None
    ) -> Entry:
        compiled = [
            (sub, self._value(f"{key}.fields.{sub}", sub_spec, zone))
            for sub, sub_spec in fields.items()
        ]
        return _field_set_entry(name_key, name, compiled)

    @property
    def lead_attributes(self) -> tuple[str, ...]:
        """Top-level lead schema names the mapping sends, custom field sets included (for a
        preflight check); ``SearchBy`` itself is not one."""
        return tuple(self._lead_names)

    @property
    def activity_fields(self) -> tuple[str, ...]:
        """Activity field schema names the mapping sends, custom field sets included."""
        return tuple(self._field_names)

    def columns(self) -> dict[str, str]:
        """Every input column the mapping reads -> the first mapping key that reads it."""
        used: dict[str, str] = {}
        for value in self._all:
            for column in value.columns:
                used.setdefault(column, value.key)
        for column, key in self._filter_columns:
            used.setdefault(column, key)
        return used

    def check_columns(self, available: Sequence[str], input_name: str) -> None:
        """Fail before sending anything if the input lacks columns; name them all at once."""
        have = set(available)
        folded = {column.strip().casefold(): column for column in available}
        missing = []
        for column, key in self.columns().items():
            if column in have:
                continue
            near = folded.get(column.strip().casefold())
            maybe = f"; did you mean '{near}'?" if near is not None else ""
            missing.append(f"'{column}' ({key}{maybe})")
        if not missing:
            return
        listed = ", ".join(available[:50])
        if len(available) > 50:
            listed += f", ... ({len(available) - 50} more)"
        noun = "column" if len(missing) == 1 else "columns"
        raise MappingError(
            f"{self._label}: {input_name} lacks {len(missing)} {noun} the mapping uses: "
            f"{', '.join(missing)}; the file has: {listed or '(no columns)'}; "
            "fix the mapping or the file's header row"
        )

    def build(self, row: Row) -> Payload:
        """The CreateCustom body for one row.

        Raises RowError if the reader could not read the row or the row cannot be mapped, and
        RowSkipped if a ``filters.skip_if`` condition matches (checked before any mapping).
        """
        error = getattr(row, "error", "")  # Row.error is new in the reader; tolerate its absence
        if error:
            raise RowError(error)
        values = row.values
        for test in self._skip_tests:
            test(values)
        search_value = self._search.resolve(values)
        if not search_value:
            raise self._search.empty_error(
                f"it is the SearchBy attribute ({self.search_by}); fill it in or remove the row"
            )
        details: list[dict[str, Any]] = []
        for entry in self._lead_before:
            item = entry(values)
            if item is not None:
                details.append(item)
        details.append({"Attribute": self.search_by, "Value": search_value})
        for entry in self._lead_after:
            item = entry(values)
            if item is not None:
                details.append(item)
        details.append({"Attribute": "SearchBy", "Value": self.search_by})

        activity: dict[str, Any] = {"ActivityEvent": self.activity_event}
        if self._note is not None:
            note = self._note.resolve(values)
            if note is not None:
                activity["ActivityNote"] = note
        if self._datetime is not None:
            when = self._datetime.resolve(values)
            if when is not None:
                activity["ActivityDateTime"] = when
        fields = []
        for entry in self._fields:
            item = entry(values)
            if item is not None:
                fields.append(item)
        if fields:
            activity["Fields"] = fields

        body: dict[str, Any] = {"LeadDetails": details, "Activity": activity}
        if self.validate_dropdown_options:
            body["ValidateDropDownOptions"] = True
        return Payload(row=row.number, key=self._key_of(search_value), body=body)


def _specs(model: _MappingFile) -> Iterator[tuple[str, _BaseSpec]]:
    """Every value spec in the file with its dotted key, field set members included."""
    groups = (
        ("lead.attributes", model.lead.attributes),
        ("activity.fields", model.activity.fields),
    )
    for prefix, specs in groups:
        for name, spec in specs.items():
            if spec.fields is None:
                yield f"{prefix}.{name}", spec
            for sub, sub_spec in (spec.fields or {}).items():
                yield f"{prefix}.{name}.fields.{sub}", sub_spec
    if model.activity.note is not None:
        yield "activity.note", model.activity.note
    if model.activity.datetime is not None:
        yield "activity.datetime", model.activity.datetime


def _cross_checks(model: _MappingFile) -> list[str]:
    """Rules that span keys, which the per-key pydantic models cannot see."""
    problems = []
    attributes = model.lead.attributes
    search_by = model.lead.search_by
    if "SearchBy" in attributes:
        problems.append(
            "lead.attributes.SearchBy: is added from lead.search_by; remove it from attributes"
        )
    if search_by not in attributes:
        names = ", ".join(attributes)
        problem = f"lead.search_by: '{search_by}' is not one of the mapped attributes ({names})"
        if search_by == "ProspectId":
            problem += "; map the lead id column as lead.attributes.ProspectId"
        problems.append(problem)
    elif attributes[search_by].fields is not None:
        problems.append(
            f"lead.search_by: '{search_by}' is a custom field set; "
            "search by a plain attribute such as EmailAddress"
        )
    if model.source.timezone is None:
        for key, spec in _specs(model):
            if isinstance(spec, _DatetimeSpec) and spec.timezone is None:
                where = f"{key}.timezone"
            elif isinstance(spec, _Spec) and spec.datetime and spec.datetime.timezone is None:
                where = f"{key}.datetime.timezone"
            else:
                continue
            problems.append(
                f"{key}: no time zone for the date-times; give {where} or source.timezone "
                f"({_TIME_ZONE_HINT})"
            )
    return problems


def load_mapping(path: str | os.PathLike[str]) -> Mapping:
    """Read, validate and compile a mapping file. Raises MappingError with a one-line message."""
    file = Path(path)
    label = os.fspath(path)
    data = _read_yaml(file, label)
    if data is None:
        raise MappingError(f"{label}: the mapping file is empty; start from mappings/example.yaml")
    if not isinstance(data, dict):
        raise MappingError(
            f"{label}: the top level must be a mapping with version, source, filters, lead, "
            f"activity and options keys, not a {type(data).__name__}; start from "
            "mappings/example.yaml"
        )
    try:
        model = _MappingFile.model_validate(data)
    except ValidationError as exc:
        raise MappingError(_validation_message(label, exc)) from None
    problems = _cross_checks(model)
    if problems:
        raise MappingError(f"{label}: " + "; ".join(problems))
    try:
        return Mapping(file, label, model)
    except _CompileError as exc:
        raise MappingError(f"{label}: {exc}") from None
