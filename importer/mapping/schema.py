"""The mapping file's schema: pydantic models that check each key once, at load time.

Rules that span keys (search_by among the attributes, a time zone for every date-time) are
checked after validation, in ``load.py``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from .dates import check_formats, check_zone
from .patterns import user_pattern
from .templates import split_template
from .text import scalar_text
from .transforms import Step, parse_map, parse_transforms

_SPEC_KEYS = "column, value or template"


def _text(value: Any, info: Any) -> Any:
    """Accept text, and integers as text; refuse what YAML silently turns into something else."""
    if value is None or isinstance(value, str):
        if value == "" and info.field_name in ("column", "template"):
            raise ValueError("must not be empty")
        return value
    return scalar_text(value, "")


class KeyedValueError(ValueError):
    """A model validator's error about one of the model's keys: messages.py names ``key`` in
    the error's location, as a field validator's error would be."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _one_or_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- values


class BaseSpec(_Model):
    """A value: exactly one of column, value or template, plus what to do when it is empty,
    and the transforms and value map applied to it."""

    column: str | None = None
    value: str | None = None
    template: str | None = None
    default: str | None = None
    required: StrictBool = False
    empty: Literal["omit", "send"] = "omit"
    transform: tuple[Step, ...] = ()
    map: dict[str, str] | None = None
    unmapped: Literal["error", "keep", "empty"] = "error"
    map_case: Literal["sensitive", "insensitive"] = "sensitive"

    _check_text = field_validator("column", "value", "template", "default", mode="before")(_text)
    _check_transform = field_validator("transform", mode="before")(parse_transforms)
    _check_map = field_validator("map", mode="before")(parse_map)

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
            split_template(template)
        return template

    @model_validator(mode="after")
    def _exactly_one(self) -> BaseSpec:
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
    _format_check = field_validator("format")(check_formats)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"format": data} if isinstance(data, str | list) else data  # `date: "%d/%m/%Y"`


class _DatetimeOptions(_DateSpec):
    """``datetime:`` on a value: parse with ``format`` in ``timezone``, send it in UTC."""

    timezone: str | None = None

    _zone_check = field_validator("timezone")(check_zone)


class Spec(BaseSpec):
    """A value that may also be a date or a date-time (any value but the activity date-time)."""

    date: _DateSpec | None = None
    datetime: _DatetimeOptions | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Spec:
        if self.date is not None and self.datetime is not None:
            raise ValueError("give date or datetime, not both")
        return self


class AttributeSpec(Spec):
    """A lead attribute or activity field: a value, or a custom field set (``fields``)."""

    fields: dict[str, Spec] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> AttributeSpec:
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


class DatetimeSpec(BaseSpec):
    """The activity date-time: a value parsed with ``format`` in ``timezone``, sent in UTC."""

    format: list[str] = Field(min_length=1)
    timezone: str | None = None
    # An empty date-time is always left out (LeadSquared then stamps the activity itself);
    # sending "" would only be rejected.
    empty: Literal["omit"] = "omit"

    _format_list = field_validator("format", mode="before")(_one_or_list)
    _format_check = field_validator("format")(check_formats)
    _zone_check = field_validator("timezone")(check_zone)


# ---- filters


class Condition(_Model):
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
            return [scalar_text(item, f"item {i + 1}") for i, item in enumerate(value)]
        return value

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = (self.equals, self.in_, self.matches, self.empty)
        if sum(test is not None for test in tests) != 1:
            raise ValueError("give exactly one of equals, in, matches or empty")
        if self.matches is not None:
            # Here rather than on the field: whether a pattern can backtrack badly depends on
            # `case` (with it, 'a' and 'A' overlap), which a field validator cannot see.
            try:
                user_pattern(self.matches, ignore_case=self.case == "insensitive")
            except ValueError as exc:
                raise KeyedValueError("matches", str(exc)) from None
        return self


class _Filters(_Model):
    skip_if: list[Condition] = Field(default_factory=list)


# ---- file


class _Source(_Model):
    timezone: str | None = None
    # loose: a column name also matches a header that differs only in case, spaces and
    # underscores (first_name, First Name), when exactly one does (headers.py).
    match_headers: Literal["exact", "loose"] = "exact"

    _zone_check = field_validator("timezone")(check_zone)


class _Lead(_Model):
    search_by: str
    attributes: dict[str, AttributeSpec] = Field(min_length=1)


# LeadSquared's activity type codes are small positive integers (custom ones start at 200);
# 2**31 - 1 is the largest its API's 32-bit integer holds. Anything outside could only be
# refused by the account on every row, or worse, by preflight-less runs one call at a time.
MAX_EVENT_CODE = 2**31 - 1


class _Activity(_Model):
    event: StrictInt
    note: Spec | None = None
    datetime: DatetimeSpec | None = None
    fields: dict[str, AttributeSpec] = Field(default_factory=dict)

    @field_validator("event")
    @classmethod
    def _check_event(cls, code: int) -> int:
        if not 1 <= code <= MAX_EVENT_CODE:
            shown = str(code) if len(str(code)) <= 20 else f"{str(code)[:17]}..."
            placeholder = " (init-mapping writes 0 as a placeholder)" if code == 0 else ""
            raise ValueError(
                f"{shown} is not an activity type code{placeholder}: it must be a whole number "
                f"from 1 to {MAX_EVENT_CODE}, e.g. 105 (Settings > Activities > Custom "
                "Activities)"
            )
        return code


ROW_TOKEN_FIELD = re.compile(r"mx_Custom_[1-9][0-9]?")
"""The activity custom fields a row token may go into (an activity type has up to 50)."""


class _Options(_Model):
    validate_dropdown_options: StrictBool = False
    activity_cfs_key: Literal["Attribute", "SchemaName"] = "Attribute"
    row_token: str | None = None
    """A spare activity field (``mx_Custom_N``) into which lsq-import writes each row's token,
    so that a row whose answer was lost can be found exactly (see importer.sending.token)."""
    dedupe: Literal["activity", "payload", "off"] = "activity"
    """What makes a row the same as one imported before, for the ledger (see
    importer.ledger.fingerprint): its lead key and activity; ``payload``: its lead attributes
    too; ``off``: the ledger does not skip this mapping's rows."""

    @field_validator("dedupe", mode="before")
    @classmethod
    def _dedupe_off(cls, value: object) -> object:
        # YAML reads a bare ``off`` as false.
        return "off" if value is False else value

    @field_validator("row_token")
    @classmethod
    def _check_row_token(cls, name: str | None) -> str | None:
        if name is not None and not ROW_TOKEN_FIELD.fullmatch(name):
            raise ValueError(
                f"{name[:60]!r} is not an activity custom field: give the schema name of a "
                "spare one, mx_Custom_1 to mx_Custom_50, that no column is mapped to"
            )
        return name


class MappingFile(_Model):
    version: Literal[1]
    source: _Source = Field(default_factory=_Source)
    filters: _Filters = Field(default_factory=_Filters)
    lead: _Lead
    activity: _Activity
    options: _Options = Field(default_factory=_Options)

    @model_validator(mode="after")
    def _token_field_is_spare(self) -> MappingFile:
        token = self.options.row_token
        if token is not None and token in self.activity.fields:
            raise ValueError(
                f"options.row_token: {token} is also mapped in activity.fields; the token needs "
                "a spare field of its own (lsq-import writes it on every row)"
            )
        return self
