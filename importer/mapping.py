"""Column mapping: a YAML file that says how one input row becomes one CreateCustom request body.

The mapping is validated once, at load time, with pydantic models, and then compiled into small
objects (column readers, pre-split templates, date-time converters) so that :meth:`Mapping.build`
does no parsing and no pydantic work per row: a million-row file is checked at tens of thousands
of rows a second. The language is documented in ``mappings/README.md``.

Example::

    mapping = load_mapping("mappings/example.yaml")
    mapping.check_columns(header, "leads.csv")     # MappingError naming every missing column
    payload = mapping.build(row)                   # RowError: this row is invalid, go on
    json.dumps(payload.body)
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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

from .exceptions import MappingError

if TYPE_CHECKING:
    from .reader import Row

__all__ = ["Mapping", "MappingError", "Payload", "RowError", "load_mapping"]


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


# --------------------------------------------------------------------------- schema (pydantic)

_TIME_ZONE_HINT = "use an IANA name such as Asia/Kolkata, America/New_York or UTC"
_SPEC_KEYS = "column, value or template"


def _text(value: Any, info: Any) -> Any:
    """Accept text, and integers as text; refuse what YAML silently turns into something else."""
    if value is None or isinstance(value, str):
        if value == "" and info.field_name in ("column", "template"):
            raise ValueError("must not be empty")
        return value
    if isinstance(value, bool):
        raise ValueError(f"YAML read this as {str(value).lower()}; quote it if you meant text")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise ValueError(f"YAML read this as the number {value}; quote it to keep it as written")
    raise ValueError("must be text")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; {_TIME_ZONE_HINT}") from None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Spec(_Model):
    """A value: exactly one of column, value or template, plus what to do when it is empty."""

    column: str | None = None
    value: str | None = None
    template: str | None = None
    default: str | None = None
    required: StrictBool = False
    empty: Literal["omit", "send"] = "omit"

    _check_text = field_validator("column", "value", "template", "default", mode="before")(_text)

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
    def _exactly_one(self) -> _Spec:
        self._check_sources(self.column, self.value, self.template)
        return self

    def _check_sources(self, *sources: object, what: str = _SPEC_KEYS) -> None:
        if sum(source is not None for source in sources) != 1:
            raise ValueError(f"give exactly one of {what}")


class _AttributeSpec(_Spec):
    """A lead attribute: a value, or a custom field set (``fields``) of values."""

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
        has_value_options = self.default is not None or self.required or self.empty != "omit"
        if self.fields is not None and has_value_options:
            raise ValueError(
                "a custom field set takes only fields; put default, required or empty on its fields"
            )
        return self


_DATE_DIRECTIVES = re.compile(r"%[Yy]|%[cx]")


class _DatetimeSpec(_Spec):
    """The activity date-time: a value parsed with ``format`` in ``timezone``, sent in UTC."""

    format: list[str] = Field(min_length=1)
    timezone: str | None = None
    # An empty date-time is always left out (LeadSquared then stamps the activity itself);
    # sending "" would only be rejected.
    empty: Literal["omit"] = "omit"

    @field_validator("format", mode="before")
    @classmethod
    def _one_or_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("format")
    @classmethod
    def _check_formats(cls, formats: list[str]) -> list[str]:
        for fmt in formats:
            _check_format(fmt)
        return formats

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, name: str | None) -> str | None:
        if name is not None:
            _zone(name)
        return name


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


class _Source(_Model):
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, name: str | None) -> str | None:
        if name is not None:
            _zone(name)
        return name


class _Lead(_Model):
    search_by: str
    attributes: dict[str, _AttributeSpec] = Field(min_length=1)


class _Activity(_Model):
    event: StrictInt
    note: _Spec | None = None
    datetime: _DatetimeSpec | None = None
    fields: dict[str, _Spec] = Field(default_factory=dict)


class _Options(_Model):
    validate_dropdown_options: StrictBool = False


class _MappingFile(_Model):
    version: Literal[1]
    source: _Source = Field(default_factory=_Source)
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
}


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc if part != "[key]")


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model at ``loc`` accepts: walks the schema the way pydantic walked the data."""
    node: Any = _MappingFile
    for part in loc:
        origin = typing.get_origin(node)
        if origin in (typing.Union, types.UnionType):
            node = next(arg for arg in typing.get_args(node) if arg is not type(None))
            origin = typing.get_origin(node)
        if origin is dict:
            node = typing.get_args(node)[1]
        elif isinstance(node, type) and issubclass(node, BaseModel) and part in node.model_fields:
            node = node.model_fields[str(part)].annotation
        else:
            return []
    origin = typing.get_origin(node)
    if origin in (typing.Union, types.UnionType):
        node = next(arg for arg in typing.get_args(node) if arg is not type(None))
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
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
        return f"{key}: unknown key {loc[-1]!r}{where}; allowed: {allowed}"
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


def _datetime_converter(
    formats: list[str], zone: ZoneInfo, column: str | None, key: str
) -> Callable[[str], str]:
    """Parse local text with the first matching format; return UTC 'YYYY-MM-DD HH:MM:SS'.

    Files repeat date-times a lot (one import batch, one event day), so results are cached per
    distinct text. A nonexistent local time (spring-forward gap) is read with the offset in
    force before the change, an ambiguous one (fall-back) as its first occurrence (zoneinfo's
    fold=0): such a row is at worst an hour off, which beats rejecting it.
    """
    cache: dict[str, str] = {}
    parsers = [_fast_parser(fmt) or _strptime_parser(fmt) for fmt in formats]
    shown_formats = ", ".join(formats)
    if len(formats) == 1:
        tried = f"with format {shown_formats}"
    else:
        tried = f"with any of the formats {shown_formats}"

    def convert(text: str) -> str:
        result = cache.get(text)
        if result is not None:
            return result
        for parser in parsers:
            parsed = parser(text)
            if parsed is not None:
                break
        else:
            message = f"cannot parse {_show(text)} {tried}"
            if column is None:
                message = f"{key}: {message}"
            raise RowError(message, column)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone)
        # isoformat zero-pads the year (strftime('%Y') does not before 1000 on glibc); the
        # first 19 characters drop microseconds and the '+00:00'.
        result = parsed.astimezone(UTC).isoformat(" ")[:19]
        if len(cache) >= 100_000:
            cache.clear()
        cache[text] = result
        return result

    return convert


_REQUIRED = "it is marked required; fill it in, or give it a default in the mapping"


class _Value:
    """A compiled value spec. ``resolve(values)`` gives the text to send, or None to omit it.

    ``resolve`` is a closure specialised at load time: the common case (a column, no default,
    omitted when empty) is one dict lookup and one strip per row.
    """

    __slots__ = ("key", "columns", "column", "simple", "resolve")

    def __init__(
        self, key: str, spec: _Spec, convert_factory: Callable[[str | None], Any] | None = None
    ) -> None:
        self.key = key
        # The one column to blame in a RowError; a template's columns are named in the message.
        self.column = spec.column
        if spec.column is not None:
            self.columns: tuple[str, ...] = (spec.column,)
            get = _column_getter(spec.column)
        elif spec.template is not None:
            parts = _split_template(spec.template)
            self.columns = tuple(dict.fromkeys(text for is_column, text in parts if is_column))
            if self.columns:
                get = _template_getter(parts)
            else:  # only literal text: a constant, with {{ and }} already unescaped
                get = _constant_getter("".join(text for _, text in parts))
        else:
            self.columns = ()
            get = _constant_getter(spec.value or "")
        default = spec.default or ""
        required = spec.required
        send = spec.empty == "send"
        convert = convert_factory(self.column) if convert_factory else None
        # A bare column, omitted when empty: callers inline it (see _entry).
        self.simple = spec.column is not None and not (default or required or send or convert)

        def resolve(values: dict[str, str]) -> str | None:
            text = get(values)
            if not text:
                text = default
                if not text:
                    if required:
                        raise self.empty_error(_REQUIRED)
                    return "" if send else None
            return convert(text) if convert is not None else text

        self.resolve: Callable[[dict[str, str]], str | None] = resolve

    def empty_error(self, why: str) -> RowError:
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


def _field_set_entry(name: str, fields: list[tuple[str, _Value]]) -> Entry:
    """A custom field set's entry; None when all its fields are omitted."""
    entries = [_entry("Attribute", sub, value) for sub, value in fields]

    def entry(values: dict[str, str]) -> dict[str, Any] | None:
        sub = [item for item in (each(values) for each in entries) if item is not None]
        return {"Attribute": name, "Value": "", "Fields": sub} if sub else None

    return entry


_NOT_DIGITS = re.compile(r"[^0-9]")


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
    """A loaded, validated and compiled mapping file. Build one with :func:`load_mapping`."""

    def __init__(self, path: Path, label: str, model: _MappingFile) -> None:
        self.path = path
        self._label = label
        self.search_by: str = model.lead.search_by
        self.activity_event: int = model.activity.event
        self._key_of = _key_normaliser(self.search_by)
        self._validate_dropdowns = model.options.validate_dropdown_options

        source_zone = model.source.timezone
        # Every compiled value, in mapping order: for columns() and check_columns().
        self._all: list[_Value] = []
        # Lead entries before and after the search attribute, whose value build() resolves
        # first because an empty one rejects the row.
        self._lead_before: list[Entry] = []
        self._lead_after: list[Entry] = []
        self._lead_names: list[str] = []
        search: _Value | None = None
        for name, spec in model.lead.attributes.items():
            self._lead_names.append(name)
            key = f"lead.attributes.{name}"
            target = self._lead_before if search is None else self._lead_after
            if spec.fields is not None:
                fields = [
                    (sub, _Value(f"{key}.fields.{sub}", sub_spec))
                    for sub, sub_spec in spec.fields.items()
                ]
                self._all.extend(value for _, value in fields)
                target.append(_field_set_entry(name, fields))
            else:
                value = _Value(key, spec)
                self._all.append(value)
                if name == self.search_by:
                    search = value
                else:
                    target.append(_entry("Attribute", name, value))
        assert search is not None  # load_mapping checked search_by
        self._search = search

        activity = model.activity
        self._note = _Value("activity.note", activity.note) if activity.note else None
        self._datetime: _Value | None = None
        if activity.datetime is not None:
            spec = activity.datetime
            zone = ZoneInfo(spec.timezone or source_zone or "UTC")
            formats = list(spec.format)
            self._datetime = _Value(
                "activity.datetime",
                spec,
                lambda column: _datetime_converter(formats, zone, column, "activity.datetime"),
            )
        self._all.extend(value for value in (self._note, self._datetime) if value is not None)
        self._field_names: list[str] = []
        self._fields: list[Entry] = []
        for name, spec in activity.fields.items():
            value = _Value(f"activity.fields.{name}", spec)
            self._all.append(value)
            self._field_names.append(name)
            self._fields.append(_entry("SchemaName", name, value))

    @property
    def lead_attributes(self) -> tuple[str, ...]:
        """Lead attribute schema names the mapping sends (for a preflight check)."""
        return tuple(self._lead_names)

    @property
    def activity_fields(self) -> tuple[str, ...]:
        """Activity field schema names the mapping sends (for a preflight check)."""
        return tuple(self._field_names)

    def columns(self) -> dict[str, str]:
        """Every input column the mapping reads -> the first mapping key that reads it."""
        used: dict[str, str] = {}
        for value in self._all:
            for column in value.columns:
                used.setdefault(column, value.key)
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
        """The CreateCustom body for one row. Raises RowError if the row cannot be mapped."""
        values = row.values
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
        if self._validate_dropdowns:
            body["ValidateDropDownOptions"] = True
        return Payload(row=row.number, key=self._key_of(search_value), body=body)


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
    spec = model.activity.datetime
    if spec is not None and spec.timezone is None and model.source.timezone is None:
        problems.append(
            "activity.datetime: no time zone for the date-times; give activity.datetime.timezone "
            f"or source.timezone ({_TIME_ZONE_HINT})"
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
            f"{label}: the top level must be a mapping with version, source, lead, activity and "
            f"options keys, not a {type(data).__name__}; start from mappings/example.yaml"
        )
    try:
        model = _MappingFile.model_validate(data)
    except ValidationError as exc:
        raise MappingError(_validation_message(label, exc)) from None
    problems = _cross_checks(model)
    if problems:
        raise MappingError(f"{label}: " + "; ".join(problems))
    return Mapping(file, label, model)
