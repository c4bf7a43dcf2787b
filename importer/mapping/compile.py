"""The compiled mapping: :class:`Mapping` and the closures :meth:`Mapping.build` calls per row."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from .dates import date_converter, datetime_converter
from .headers import rename_columns, resolve_columns
from .meaning import MappingMeaning, meaning_of
from .outcomes import Payload, RowError, RowSkipped, RowWarning
from .patterns import TextTooLong, user_pattern
from .schema import BaseSpec, Condition, DatetimeSpec, MappingFile, Spec
from .templates import Getter, split_template, template_getter
from .text import show
from .transforms import (
    NOT_DIGITS,
    SIMPLE_TRANSFORMS,
    Converter,
    Fail,
    cached,
    map_converter,
    number_converter,
    phone_converter,
    replace_converter,
)

if TYPE_CHECKING:
    from ..reader import Row


def _column_getter(column: str) -> Getter:
    def get(values: dict[str, str]) -> str:
        return values.get(column, "").strip()

    return get


def _constant_getter(constant: str) -> Getter:
    def get(values: dict[str, str]) -> str:
        return constant

    return get


class RowDates:
    """The date cells of the row being built (:attr:`Row.date_columns`), set by
    :meth:`Mapping.build` and read by the date steps of the values that read one column."""

    __slots__ = ("columns",)

    def __init__(self) -> None:
        self.columns: frozenset[str] = frozenset()


# How the readers render a typed date cell (see importer.reader.render_cell; a DataFrame's
# timezone-aware timestamp gets its offset, +05:30): a typed date is not text written by a
# person, so it is read this way whatever formats the mapping declares.
TYPED_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%Y-%m-%d %H:%M:%S%z")


def _date_step(
    spec: BaseSpec,
    fail: Fail,
    source_zone: str | None,
    warn: Callable[[str], None] | None,
    formats: list[str] | None = None,
) -> Converter | None:
    """The date or date-time parsing step of a value, with ``formats`` instead of the
    declared ones if given; None when the value is neither."""
    if isinstance(spec, DatetimeSpec):
        zone = ZoneInfo(spec.timezone or source_zone or "UTC")
        return datetime_converter(formats or spec.format, zone, fail, warn)
    if isinstance(spec, Spec) and spec.datetime is not None:
        zone = ZoneInfo(spec.datetime.timezone or source_zone or "UTC")
        return datetime_converter(formats or spec.datetime.format, zone, fail, warn)
    if isinstance(spec, Spec) and spec.date is not None:
        return date_converter(formats or spec.date.format, fail)
    return None


def _declared_formats(spec: BaseSpec) -> list[str]:
    if isinstance(spec, DatetimeSpec):
        return spec.format
    if isinstance(spec, Spec) and spec.datetime is not None:
        return spec.datetime.format
    if isinstance(spec, Spec) and spec.date is not None:
        return spec.date.format
    return []


def _converter(
    spec: BaseSpec,
    key: str,
    fail: Fail,
    source_zone: str | None,
    warn: Callable[[str], None] | None = None,
    row_dates: RowDates | None = None,
) -> Converter | None:
    """The whole chain for one value: transforms in order, then the map, then date parsing.
    ``warn`` is told of a date-time sent as documented that may not be what was meant.
    ``row_dates``: the row's typed date cells; a value reading one column then reads such a
    cell as the reader renders it, whatever its declared formats (tried after those)."""
    steps: list[Converter] = []
    for step in spec.transform:
        if step.name == "phone":
            steps.append(cached(phone_converter(step, fail)))
        elif step.name == "number":
            steps.append(cached(number_converter(step, fail)))
        elif step.name == "replace":
            steps.append(cached(replace_converter(step, fail)))
        else:
            steps.append(SIMPLE_TRANSFORMS[step.name])
    if spec.map is not None:
        fold = spec.map_case == "insensitive"
        steps.append(map_converter(spec.map, key, fail, fold=fold, unmapped=spec.unmapped))
    declared = _date_step(spec, fail, source_zone, warn)
    if declared is not None and row_dates is not None and spec.column is not None:
        column = spec.column
        formats = [*TYPED_DATE_FORMATS, *_declared_formats(spec)]
        typed = _date_step(spec, fail, source_zone, warn, list(dict.fromkeys(formats)))
        assert typed is not None
        dates = row_dates

        def date_or_typed_date(text: str) -> str:
            return (typed if column in dates.columns else declared)(text)

        steps.append(date_or_typed_date)
    elif declared is not None:
        steps.append(declared)
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


class CompileError(Exception):
    """A default or constant the mapping's own transforms, map or formats refuse."""


_REQUIRED = "it is marked required; fill it in, or give it a default in the mapping"


class _Value:
    """A compiled value spec. ``resolve(values)`` gives the text to send, or None to omit it.

    ``resolve`` is a closure specialised at load time: the common case (a column, no default,
    omitted when empty) is one dict lookup and one strip per row. Defaults and constants are
    converted once, here, so a bad one is a mapping error rather than a failure on every row.
    """

    __slots__ = ("key", "columns", "column", "simple", "resolve")

    def __init__(
        self,
        key: str,
        spec: BaseSpec,
        source_zone: str | None = None,
        warnings: list[RowWarning] | None = None,
        row_dates: RowDates | None = None,
    ) -> None:
        self.key = key
        # The one column to blame in a RowError; a template's columns are named in the message.
        self.column = column = spec.column

        def row_fail(message: str) -> RowError:
            return (
                RowError(message, column) if column is not None else RowError(f"{key}: {message}")
            )

        row_warn: Callable[[str], None] | None = None
        if warnings is not None:
            add = warnings.append

            def row_warn(message: str) -> None:
                add(
                    RowWarning(message, column)
                    if column is not None
                    else RowWarning(f"{key}: {message}")
                )

        convert = _converter(spec, key, row_fail, source_zone, row_warn, row_dates)
        constant: str | None = None
        if spec.column is not None:
            self.columns: tuple[str, ...] = (spec.column,)
            get = _column_getter(spec.column)
        elif spec.template is not None:
            parts = split_template(spec.template)
            self.columns = tuple(dict.fromkeys(text for is_column, text in parts if is_column))
            if self.columns:
                get = template_getter(parts)
            else:  # only literal text: a constant, with {{ and }} already unescaped
                constant = "".join(text for _, text in parts).strip()
        else:
            self.columns = ()
            constant = spec.value or ""
        default = self._at_load(spec, spec.default or "", key, ".default", source_zone)
        if spec.default and not default:
            raise CompileError(
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
    def _at_load(spec: BaseSpec, text: str, key: str, suffix: str, zone: str | None) -> str:
        """Convert a default or constant now; its failure names the mapping key."""
        if not text:
            return text
        convert = _converter(spec, key, RowError, zone)
        if convert is None:
            return text
        try:
            return convert(text)
        except RowError as exc:
            raise CompileError(f"{key}{suffix}: {exc.message}") from None

    def empty_error(self, why: str, raw: str = "") -> RowError:
        if raw:
            return RowError(
                f"{show(raw)} becomes empty after its transform or map, but {self.key} needs "
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


Section = Literal["lead", "activity"]


@dataclass(frozen=True, slots=True)
class Target:
    """One entry the mapping sends, described for a check against the account's fields.

    ``section`` says whether ``name`` is a lead attribute or an activity field; ``parent`` is
    the custom field set ``name`` is a sub-field of, or None. ``key`` is the mapping key
    (``lead.attributes.mx_KYC.fields.Status``) and ``column`` the input column feeding it, if
    one does.

    ``fixed`` holds the non-empty texts known without reading the file, worked out by the
    compiled value exactly as :meth:`Mapping.build` would: a constant, the default sent for an
    empty cell, each value-map output (after the transforms, dates converted); a value that
    fails there is left out, as its row would fail. A template lists none, not even its
    default. ``free`` says whether a cell's own text can reach the API: a column or template
    without a map, or one whose map keeps unmapped values.

    A custom field set is a target itself (``field_set``), with no column and nothing fixed;
    its sub-fields follow it.
    """

    section: Section
    parent: str | None
    name: str
    key: str
    column: str | None
    fixed: tuple[str, ...]
    free: bool
    field_set: bool = False


def _target(
    section: Section, parent: str | None, name: str, spec: BaseSpec, value: _Value
) -> Target:
    """The target of one compiled value (``spec`` is what it was compiled from)."""
    free = spec.map is None or spec.unmapped == "keep"
    if spec.template is not None:
        # Its default is knowable too, but the preflight check has never listed one: listing it
        # here would change what that check reports.
        return Target(section, parent, name, value.key, None, (), free)
    if spec.column is None:  # a constant
        text = _sent(value, {})
        return Target(section, parent, name, value.key, None, (text,) if text else (), False)
    inputs = ["", *(spec.map or ())]
    sent = (_sent(value, {spec.column: given}) for given in inputs)
    fixed = tuple(dict.fromkeys(text for text in sent if text))
    return Target(section, parent, name, value.key, spec.column, fixed, free)


def _sent(value: _Value, cells: dict[str, str]) -> str:
    """What build() sends for these cells; "" when it sends nothing or refuses the row."""
    try:
        return value.resolve(cells) or ""
    except Exception:  # the row that has this cell fails the same way, and says so there
        return ""


SkipTest = Callable[[dict[str, str]], None]


def _skip_test(index: int, condition: Condition) -> SkipTest:
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
        # Checked at load already (schema.Condition); this compiles the same checked pattern.
        pattern = user_pattern(condition.matches, ignore_case=fold)
        shown = condition.matches

        def test_matches(values: dict[str, str]) -> None:
            cell = values.get(column, "").strip()
            try:
                found = pattern.search(cell)
            except TextTooLong as exc:  # the bound on matching time needs a bound on the text
                raise RowError(
                    f"{exc} ({where}); shorten the cell, or filter it with equals, in or empty",
                    column,
                ) from None
            if found:
                raise skip(f"({show(cell)}) matches '{shown}'")

        return test_matches
    wanted = [condition.equals] if condition.equals is not None else list(condition.in_ or ())
    targets = frozenset(text.strip().casefold() if fold else text.strip() for text in wanted)

    def test_equals(values: dict[str, str]) -> None:
        cell = values.get(column, "").strip()
        if (cell.casefold() if fold else cell) in targets:
            raise skip(f"is {show(cell)}")

    return test_equals


def _key_normaliser(search_by: str) -> Callable[[str], str]:
    """How two SearchBy values are compared to tell whether rows belong to one lead."""
    if search_by in ("Phone", "Mobile"):

        def digits(text: str) -> str:
            # '+91-98765 43210' and '+91 9876543210' are one lead; a value with no digits at
            # all keeps its own text rather than colliding with every other such value.
            return NOT_DIGITS.sub("", text) or text

        return digits
    if search_by == "EmailAddress" or search_by == "ProspectId":
        return str.casefold  # e-mail lookups and lead ids (GUIDs) are case-insensitive
    return lambda text: text


# --------------------------------------------------------------------------- Mapping


class Mapping:
    """A loaded, validated and compiled mapping file. Build one with :func:`load_mapping`.

    Besides :meth:`build` (and :meth:`key_of`, the lead a row names, without building it),
    it tells a preflight check what it will send: :meth:`targets`, ``activity_event``,
    ``lead_attributes`` (with ``lead_cfs_fields``), ``activity_fields`` (with
    ``activity_cfs_fields``) and ``validate_dropdown_options``.
    """

    def __init__(self, path: Path, label: str, model: MappingFile) -> None:
        self.path = path
        self._label = label
        self._model = model
        self._compile(model)
        self._declared_columns = self.columns()
        """The columns as the mapping names them (columns() gives the headers they matched)."""
        self._renames: dict[str, str] = {}

    @functools.cached_property
    def meaning(self) -> MappingMeaning:
        """Digests of what this mapping means (its validated model, not its bytes): see
        :mod:`.meaning`. A results file records them to tell a resume whether the mapping
        changed what rows become."""
        return meaning_of(self._model)

    def _compile(self, model: MappingFile) -> None:
        self.search_by: str = model.lead.search_by
        self.activity_event: int = model.activity.event
        self.validate_dropdown_options: bool = model.options.validate_dropdown_options
        self.row_token: str | None = model.options.row_token
        """The activity field a row token goes into (``options.row_token``), or None."""
        self.dedupe: str = model.options.dedupe
        """What the ledger takes as the same activity (``options.dedupe``)."""
        self._normalise_key = _key_normaliser(self.search_by)
        zone = model.source.timezone
        self._warnings: list[RowWarning] = []
        """What the values of the row being built warned about (see RowWarning)."""
        self._row_dates = RowDates()
        """The typed date cells of the row being built (see Row.date_columns)."""

        # Every compiled value, in mapping order: for columns() and check_columns().
        self._all: list[_Value] = []
        self._targets: list[Target] = []
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
            entries = self._lead_before if search is None else self._lead_after
            if spec.fields is not None:
                self.lead_cfs_fields[name] = tuple(spec.fields)
                entries.append(self._field_set("lead", "Attribute", name, key, spec.fields, zone))
            else:
                value = self._value(key, spec, zone)
                self._targets.append(_target("lead", None, name, spec, value))
                if name == self.search_by:
                    search = value
                else:
                    entries.append(_entry("Attribute", name, value))
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
                entry = self._field_set("activity", cfs_key, name, key, spec.fields, zone)
            else:
                value = self._value(key, spec, zone)
                self._targets.append(_target("activity", None, name, spec, value))
                entry = _entry("SchemaName", name, value)
            self._fields.append(entry)

        self._filter_columns = [
            (condition.column, f"filters.skip_if[{i}]")
            for i, condition in enumerate(model.filters.skip_if)
        ]
        self._skip_tests = tuple(
            _skip_test(i, condition) for i, condition in enumerate(model.filters.skip_if)
        )

    def _value(self, key: str, spec: BaseSpec, zone: str | None) -> _Value:
        value = _Value(key, spec, zone, self._warnings, self._row_dates)
        self._all.append(value)
        return value

    def _field_set(
        self,
        section: Section,
        name_key: str,
        name: str,
        key: str,
        fields: dict[str, Spec],
        zone: str | None,
    ) -> Entry:
        self._targets.append(Target(section, None, name, key, None, (), False, field_set=True))
        compiled = []
        for sub, sub_spec in fields.items():
            value = self._value(f"{key}.fields.{sub}", sub_spec, zone)
            self._targets.append(_target(section, name, sub, sub_spec, value))
            compiled.append((sub, value))
        return _field_set_entry(name_key, name, compiled)

    def targets(self) -> tuple[Target, ...]:
        """Every lead attribute and activity field the mapping sends, custom field sets and
        their sub-fields included, in mapping order (lead first): see :class:`Target`. The
        activity note and date-time are not among them."""
        return tuple(self._targets)

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
        """Fail before sending anything if the input lacks columns; name them all at once.

        With ``source.match_headers: loose``, a column that differs from one header only in
        case, spaces and underscores reads that header from now on (this mapping is compiled
        again for it: call this before building the file's rows)."""
        renames = resolve_columns(
            self._declared_columns,
            available,
            loose=self._model.source.match_headers == "loose",
            label=self._label,
            input_name=input_name,
        )
        if renames != self._renames:
            self._compile(rename_columns(self._model, renames))
            self._renames = renames

    def key_of(self, row: Row) -> str:
        """The row's SearchBy key, normalised for comparison exactly as ``build(row).key``.

        Only the SearchBy value is worked out (its column or template, default, transforms and
        map), so it costs a dict lookup for a plain column: fast enough to run over every row
        of a file, e.g. to check on resume that each row still names the lead it was sent
        for. Returns "" when the row has no key: the reader could not read it, or its SearchBy
        value is empty or refused (the row is invalid). Filters and the other values are not
        looked at, so a row that ``filters`` skip, or that another column makes invalid,
        still has the key of the lead it names.
        """
        if row.error:
            return ""
        self._row_dates.columns = row.date_columns
        try:
            value = self._search.resolve(row.values)
        except RowError:
            return ""
        finally:
            if self._warnings:  # not this method's to report: build() says them
                self._warnings.clear()
        return self._normalise_key(value) if value else ""

    def build(self, row: Row) -> Payload:
        """The CreateCustom body for one row.

        Raises RowError if the reader could not read the row or the row cannot be mapped, and
        RowSkipped if a ``filters.skip_if`` condition matches (checked before any mapping).
        What its values warned about (a local time that happens twice) is in the payload's
        ``warnings``.
        """
        warnings = self._warnings
        if warnings:  # left by a row that failed after a value had warned
            warnings.clear()
        if row.error:
            raise RowError(row.error)
        values = row.values
        self._row_dates.columns = row.date_columns
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
        said: tuple[RowWarning, ...] = ()
        if warnings:
            said = tuple(warnings)
            warnings.clear()
        return Payload(row.number, self._normalise_key(search_value), body, said)
