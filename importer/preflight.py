"""Preflight: check a mapping against the account's metadata before the first row is sent.

Why: a wrong activity code, a misspelt schema name or a dropdown constant the account does not
know makes *every* row fail. Three metadata GETs find that out in a second, instead of after
300,000 refused calls:

1. ``ActivityTypes.Get``: the mapping's ``activity.event`` exists;
2. ``CustomActivity/GetActivitySetting?code=N``: each ``activity.fields`` name is a field of
   that activity, its mandatory fields are mapped, and fixed dropdown values are options
   (skipped when ``options.validate_dropdown_options`` is set, as LeadSquared skips them);
3. ``LeadsMetaData.Get``: each lead attribute is a lead field (a custom field set where the
   mapping gives ``fields:``, with those sub-fields when the metadata lists them), and fixed
   dropdown values (``value:``, ``default:``, value-map outputs) are among its options.

Every problem is collected and raised as one :class:`PreflightError` line naming the mapping
keys and what the account has. 401/404 answers raise :class:`FatalApiError`. Values that come
from a column can only be checked row by row: :meth:`PreflightReport.row_checker` gives
``validate --online`` that check.

From async code, with the run's pacer so the GETs count against the rate limit::

    report = await preflight(LeadSquaredClient(session, url), mapping, pacer=pacer)

From sync code: ``check_account(mapping, host="api-in21.leadsquared.com")``.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .account import MetadataReader
from .exceptions import ImporterError
from .leadsquared.classify import Kind
from .leadsquared.client import (
    ACTIVITY_SETTING_PATH,
    ACTIVITY_TYPES_PATH,
    LEAD_METADATA_PATH,
    LeadSquaredClient,
)
from .leadsquared.connect import Endpoint, connect, resolve_endpoint
from .mapping import Mapping, RowError, Target
from .sending.pacer import Pacer
from .sending.retry import RetryPolicy
from .settings import Credentials

__all__ = [
    "PreflightError",
    "PreflightReport",
    "check_account",
    "fetch_lead_fields",
    "preflight",
    "read_lead_fields",
]

T = TypeVar("T")

DROPDOWN_TYPES = frozenset({"select", "dropdown", "searchabledropdown", "multiselect"})
# Lead attributes LeadSquared accepts without listing them in LeadsMetaData.
_IMPLICIT_LEAD_ATTRIBUTES = frozenset({"prospectid"})
_SHOW = 12  # names listed in a message before "... (N more)"


class PreflightError(ImporterError):
    """The mapping does not fit the account: nothing was sent. Fix the mapping and rerun."""


# --------------------------------------------------------------------------------------------
# Metadata as the account describes it


def _option_values(options: Any) -> tuple[str, ...]:
    """Accepted values of a dropdown: each option's Value and Text (LeadSquared takes both)."""
    values: list[str] = []
    for option in options or ():
        if isinstance(option, str):
            values.append(option)
        elif isinstance(option, dict):
            for key in ("Value", "Text"):
                if isinstance(option.get(key), str):
                    values.append(option[key])
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class _Field:
    name: str
    display: str
    data_type: str
    mandatory: bool
    options: tuple[str, ...] | None  # None: not a dropdown
    sub_fields: dict[str, _Field] | None  # custom field set: its fields, when listed

    @classmethod
    def parse(cls, raw: dict[str, Any], options_key: str) -> _Field:
        data_type = str(raw.get("DataType") or "")
        options = _option_values(raw.get(options_key))
        is_dropdown = bool(options) or data_type.lower() in DROPDOWN_TYPES
        subs = None
        if isinstance(raw.get("Fields"), list):
            subs = _fields_by_name(raw["Fields"], options_key)
        return cls(
            name=str(raw.get("SchemaName")),
            display=str(raw.get("DisplayName") or raw.get("SchemaName")),
            data_type=data_type,
            mandatory=bool(raw.get("IsMandatory")),
            options=options if is_dropdown else None,
            sub_fields=subs,
        )

    @property
    def is_field_set(self) -> bool:
        return self.data_type.lower() == "customobject"

    def accepts(self, value: str) -> bool:
        """Whether a dropdown takes ``value``; empty always passes (it clears or omits)."""
        if self.options is None or value == "" or value in self.options:
            return True
        if self.data_type.lower() == "multiselect":  # "A;B" picks two options
            return all(part.strip() in self.options for part in value.split(";"))
        return False


def _fields_by_name(items: Any, options_key: str) -> dict[str, _Field]:
    fields: dict[str, _Field] = {}
    for raw in items if isinstance(items, list) else ():
        if isinstance(raw, dict) and isinstance(raw.get("SchemaName"), str):
            fields[raw["SchemaName"]] = _Field.parse(raw, options_key)
    return fields


def _listed(names: Iterable[str]) -> str:
    names = list(names)
    shown = ", ".join(names[:_SHOW])
    if len(names) > _SHOW:
        shown += f", ... ({len(names) - _SHOW} more)"
    return shown or "none"


def _options_text(f: _Field) -> str:
    return _listed(f.options or ()) if f.options else "no options"


def _near(name: str, known: Iterable[str]) -> str:
    """' (did you mean X?)' for a case slip or a close spelling, else ''."""
    known = list(known)
    for candidate in known:
        if candidate.casefold() == name.casefold():
            return f" (did you mean {candidate}?)"
    # mx_Custom_9 is not a misspelt mx_Custom_3: numbered names differing in digits only
    # are different fields, so they are no suggestion.
    shape = re.sub(r"\d", "", name)
    close = [
        candidate
        for candidate in difflib.get_close_matches(name, known, n=3, cutoff=0.8)
        if re.sub(r"\d", "", candidate) != shape
    ]
    return f" (did you mean {close[0]}?)" if close else ""


# --------------------------------------------------------------------------------------------
# What the mapping sends: names, the column feeding each, and the values knowable up front


@dataclass
class _Sends:
    lead: dict[str, Target]  # attribute -> value (plain attributes)
    field_sets: dict[str, dict[str, Target]]  # attribute -> sub-field -> value
    activity: dict[str, Target]  # activity custom field sets included
    activity_sets: dict[str, dict[str, Target]]  # activity custom field set -> sub -> value
    event: int
    skip_activity_dropdowns: bool
    row_token: str | None = None

    @classmethod
    def of(cls, mapping: Mapping) -> _Sends:
        sends = cls(
            {},
            {},
            {},
            {},
            mapping.activity_event,
            mapping.validate_dropdown_options,
            mapping.row_token,
        )
        for target in mapping.targets():
            if target.parent is not None:  # a sub-field of a custom field set
                sets = sends.field_sets if target.section == "lead" else sends.activity_sets
                sets.setdefault(target.parent, {})[target.name] = target
            elif target.section == "activity":  # a field set too: its name is checked here
                sends.activity[target.name] = target
            elif not target.field_set:  # a lead field set is checked through field_sets
                sends.lead[target.name] = target
        return sends


# --------------------------------------------------------------------------------------------
# The report


@dataclass
class PreflightReport:
    """What the account check found (problems raise; this is the success case)."""

    target: str
    event: int
    event_name: str = ""
    lead_fields_checked: int = 0
    activity_fields_checked: int = 0
    fixed_values_checked: int = 0
    calls: int = 0
    warnings: list[str] = field(default_factory=list)
    lead_dropdowns: dict[str, _Field] = field(default_factory=dict, repr=False)
    """Plain lead attributes fed by a column whose account field is a dropdown."""
    field_set_dropdowns: dict[str, dict[str, _Field]] = field(default_factory=dict, repr=False)
    activity_dropdowns: dict[str, _Field] = field(default_factory=dict, repr=False)
    keys: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict, repr=False)
    """(section, name) -> (mapping key, column), for row messages."""

    def to_text(self) -> str:
        lines = [
            f"account check ({self.target}): activity {self.event} ({self.event_name}) exists; "
            f"{self.lead_fields_checked} lead fields, {self.activity_fields_checked} activity "
            f"fields and {self.fixed_values_checked} fixed dropdown values match "
            f"({self.calls} metadata calls)"
        ]
        lines.extend(f"warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)

    def row_checker(self) -> Callable[[dict[str, Any]], None] | None:
        """A check of one body's dropdown values against the account's options, or None.

        Raises RowError naming the column and the options. For ``validate --online``: values
        read from a column can only be checked once each row is read.
        """
        lead, sets, activity = (
            self.lead_dropdowns,
            self.field_set_dropdowns,
            self.activity_dropdowns,
        )
        if not (lead or sets or activity):
            return None
        keys = self.keys

        def fail(section: str, name: str, f: _Field, value: str) -> RowError:
            key, column = keys.get((section, name), (name, None))
            return RowError(
                f"{key}: {value!r} is not one of the account's options for {f.display} "
                f"({_options_text(f)})",
                column,
            )

        def check(body: dict[str, Any]) -> None:
            for item in body.get("LeadDetails", ()):
                name = item.get("Attribute")
                f = lead.get(name)
                if f is not None and not f.accepts(item.get("Value", "")):
                    raise fail("lead", name, f, item["Value"])
                subs = sets.get(name)
                if subs and item.get("Fields"):
                    for sub in item["Fields"]:
                        sf = subs.get(sub.get("Attribute"))
                        if sf is not None and not sf.accepts(sub.get("Value", "")):
                            raise fail(name, sub["Attribute"], sf, sub["Value"])
            if activity:
                for item in body.get("Activity", {}).get("Fields", ()):
                    name = item.get("SchemaName") or item.get("Attribute")
                    f = activity.get(name)
                    if f is not None and not f.accepts(item.get("Value", "")):
                        raise fail("activity", name, f, item["Value"])

        return check


def _unusable(url: str, problem: str) -> PreflightError:
    return PreflightError(
        f"preflight: {url} {problem}; check --host, or retry later if LeadSquared is unavailable"
    )


# --------------------------------------------------------------------------------------------
# The checks


async def fetch_lead_fields(
    client: LeadSquaredClient, *, pacer: Pacer | None = None
) -> list[dict[str, Any]]:
    """``LeadsMetaData.Get`` as a list of field objects (for ``init-mapping --online``)."""
    meta = MetadataReader(client, pacer)
    kind, body, problem = await meta.get(LEAD_METADATA_PATH)
    url = client.base_url + LEAD_METADATA_PATH
    if kind is not Kind.SUCCESS:
        raise _unusable(url, problem)
    if not isinstance(body, list):
        raise _unusable(url, "did not answer with a list of lead fields")
    return [item for item in body if isinstance(item, dict)]


async def preflight(
    client: LeadSquaredClient,
    mapping: Mapping,
    *,
    pacer: Pacer | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> PreflightReport:
    """Check ``mapping`` against the account behind ``client``; return what was checked.

    ``pacer``: the run's :class:`Pacer`, so the two or three GETs take slots like any call
    (and throttling closes the window for everyone). Raises :class:`PreflightError` (exit 2)
    naming every mapping key that does not fit, :class:`FatalApiError` (exit 3) on 401/404.
    """
    sends = _Sends.of(mapping)
    meta = MetadataReader(client, pacer, retry, sleep)
    report = PreflightReport(target=client.base_url, event=sends.event)
    problems: list[str] = []

    # The lead metadata does not depend on the activity checks: ask for it meanwhile, so the
    # preflight costs two round trips before the first row, not three.
    lead_metadata = asyncio.create_task(meta.get(LEAD_METADATA_PATH))
    try:
        activity_fields = await _check_event(meta, sends, report, problems)
    except BaseException:
        lead_metadata.cancel()
        with contextlib.suppress(BaseException):
            await lead_metadata
        raise
    if activity_fields is not None:
        _check_activity_fields(activity_fields, sends, report, problems)

    kind, body, problem = await lead_metadata
    if kind is not Kind.SUCCESS or not isinstance(body, list):
        url = client.base_url + LEAD_METADATA_PATH
        raise _unusable(url, problem or "did not answer with a list")
    _check_lead_fields(_fields_by_name(body, "Options"), sends, report, problems)

    report.calls = meta.calls
    if problems:
        label = os.fspath(mapping.path)
        noun = "problem" if len(problems) == 1 else "problems"
        raise PreflightError(
            f"{label}: does not fit the account at {client.base_url} ({len(problems)} {noun}, "
            f"nothing sent): {'; '.join(problems)}; use the account's schema names "
            "(Settings > Leads > Lead Fields, Settings > Activities)"
        )
    return report


async def _check_event(
    meta: MetadataReader, sends: _Sends, report: PreflightReport, problems: list[str]
) -> dict[str, _Field] | None:
    """The event exists; returns its fields, or None when they cannot be checked."""
    url = meta.client.base_url + ACTIVITY_TYPES_PATH
    kind, body, problem = await meta.get(ACTIVITY_TYPES_PATH)
    if kind is not Kind.SUCCESS or not isinstance(body, list):
        raise _unusable(url, problem or "did not answer with a list")
    types: dict[int, str] = {}
    for item in body:
        if not isinstance(item, dict):
            continue
        with contextlib.suppress(TypeError, ValueError):
            code = int(item.get("ActivityEvent"))  # type: ignore[arg-type]
            types[code] = str(item.get("DisplayName") or item.get("ActivityEventName") or "")
    event = sends.event
    if event not in types:
        listed = _listed(f"{code} ({name})" for code, name in sorted(types.items()))
        todo = " (replace the placeholder 0 with your activity code)" if event == 0 else ""
        problems.append(
            f"activity.event: {event} is not an activity type of this account{todo}; "
            f"it has {listed}"
        )
        return None
    report.event_name = types[event]
    kind, body, problem = await meta.get(ACTIVITY_SETTING_PATH, {"code": str(event)})
    if kind is not Kind.SUCCESS or not isinstance(body, dict):
        report.warnings.append(
            f"activity fields of {event} not checked: GetActivitySetting "
            f"{problem or 'answered without its Fields'}"
        )
        return None
    return _fields_by_name(body.get("Fields"), "OptionSet")


def _check_activity_fields(
    fields: dict[str, _Field], sends: _Sends, report: PreflightReport, problems: list[str]
) -> None:
    what = f"activity {sends.event} ({report.event_name})"
    for name, target in sends.activity.items():
        f = fields.get(name)
        if f is None:
            problems.append(
                f"{target.key}: not a field of {what}{_near(name, fields)}; "
                f"it has {_listed(fields)}"
            )
            continue
        report.activity_fields_checked += 1
        subs = sends.activity_sets.get(name)
        if subs is not None:
            _check_activity_set(name, f, subs, what, sends, report, problems)
            continue
        if f.options is None or sends.skip_activity_dropdowns:
            continue
        _check_fixed(target, f, report, problems)
        if target.free:
            report.activity_dropdowns[name] = f
            report.keys[("activity", name)] = (target.key, target.column)
    token = sends.row_token
    if token is not None:
        f = fields.get(token)
        if f is None:
            spare = [n for n in fields if n not in sends.activity and _holds_text(fields[n])]
            problems.append(
                f"options.row_token: {token} is not a field of {what}; add a text field for the "
                "token to the activity type, or name a spare one"
                + (f" (it has {_listed(spare)} unmapped)" if spare else "")
            )
        elif not _holds_text(f):
            kind = "a dropdown" if f.options is not None else f"a {f.data_type} field"
            problems.append(
                f"options.row_token: {token} ({f.display}) is {kind} in {what}; the token "
                "needs a text field"
            )
        else:
            report.activity_fields_checked += 1
    for name, f in fields.items():
        if f.mandatory and name not in sends.activity and name != token:
            problems.append(
                f"activity.fields: {what} requires {name} ({f.display}); map it "
                f"(e.g. '{name}: <column>')"
            )


_TEXT_TYPES = frozenset({"", "string", "text", "largetextarea", "textarea"})
"""Field types that hold a row token (``lsq-`` and 12 hex digits); "" when the metadata says
none (the sandbox's default schema names String)."""


def _holds_text(f: _Field) -> bool:
    """Whether an activity field can hold a row token: text, not a dropdown or a field set."""
    return f.options is None and f.data_type.lower() in _TEXT_TYPES


def _check_activity_set(
    name: str,
    f: _Field,
    subs: dict[str, Target],
    what: str,
    sends: _Sends,
    report: PreflightReport,
    problems: list[str],
) -> None:
    """A custom field set on the activity: known sub-fields, fixed dropdown values, mandatory
    sub-fields (values read from a column are checked by the server, row by row)."""
    if f.sub_fields is None:  # the metadata does not list its fields: nothing to compare
        return
    for sub, target in subs.items():
        sf = f.sub_fields.get(sub)
        if sf is None:
            problems.append(
                f"{target.key}: not a field of {name} in {what}{_near(sub, f.sub_fields)}; "
                f"it has {_listed(f.sub_fields)}"
            )
        elif sf.options is not None and not sends.skip_activity_dropdowns:
            _check_fixed(target, sf, report, problems)
    missing = [sub for sub, sf in f.sub_fields.items() if sf.mandatory and sub not in subs]
    if missing:
        problems.append(
            f"activity.fields.{name}: {what} requires {_listed(missing)} in {name}; map them "
            "under 'fields:'"
        )


def _check_fixed(target: Target, f: _Field, report: PreflightReport, problems: list[str]) -> None:
    for value in target.fixed:
        report.fixed_values_checked += 1
        if not f.accepts(value):
            problems.append(
                f"{target.key}: {value!r} is not one of the options of {f.display} "
                f"({_options_text(f)})"
            )


def _check_lead_fields(
    fields: dict[str, _Field], sends: _Sends, report: PreflightReport, problems: list[str]
) -> None:
    for name, target in sends.lead.items():
        if name.casefold() in _IMPLICIT_LEAD_ATTRIBUTES:
            continue
        f = fields.get(name)
        if f is None:
            problems.append(
                f"{target.key}: not a lead field of this account{_near(name, fields)}; "
                f"it has {_listed(fields)}"
            )
            continue
        report.lead_fields_checked += 1
        if f.is_field_set:
            listed = _listed(f.sub_fields) if f.sub_fields else "see the account"
            problems.append(
                f"{target.key}: is a custom field set in the account; map its fields under "
                f"'fields:' ({listed})"
            )
            continue
        if f.options is not None:
            _check_fixed(target, f, report, problems)
            if target.free:
                report.lead_dropdowns[name] = f
                report.keys[("lead", name)] = (target.key, target.column)
    for name, subs in sends.field_sets.items():
        key = f"lead.attributes.{name}"
        f = fields.get(name)
        if f is None:
            problems.append(
                f"{key}: not a lead field of this account{_near(name, fields)}; "
                f"it has {_listed(fields)}"
            )
            continue
        report.lead_fields_checked += 1
        if not f.is_field_set:
            problems.append(
                f"{key}: has 'fields:' but {name} is not a custom field set in the account "
                f"(its type is {f.data_type or 'unknown'}); map a column to it directly"
            )
            continue
        if f.sub_fields is None:  # the metadata does not list CFS fields: nothing to compare
            continue
        for sub, target in subs.items():
            sf = f.sub_fields.get(sub)
            if sf is None:
                problems.append(
                    f"{target.key}: not a field of the custom field set {name}"
                    f"{_near(sub, f.sub_fields)}; it has {_listed(f.sub_fields)}"
                )
                continue
            if sf.options is not None:
                _check_fixed(target, sf, report, problems)
                if target.free:
                    report.field_set_dropdowns.setdefault(name, {})[sub] = sf
                    report.keys[(name, sub)] = (target.key, target.column)
    mandatory = [name for name, f in fields.items() if f.mandatory and name not in sends.lead]
    if mandatory:
        report.warnings.append(
            f"lead fields mandatory for new leads are not mapped: {_listed(mandatory)} "
            "(rows that create a lead will be refused)"
        )


# --------------------------------------------------------------------------------------------
# From sync code (the CLI)


async def _with_client(
    endpoint: Endpoint, timeout: float, work: Callable[[LeadSquaredClient], Awaitable[T]]
) -> T:
    async with connect(endpoint, timeout=timeout) as client:
        return await work(client)


def check_account(
    mapping: Mapping,
    *,
    host: str | None = None,
    credentials: Credentials | None = None,
    env_file: str | os.PathLike[str] | None = None,
    sandbox: bool = False,
    sandbox_schema: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
) -> PreflightReport:
    """:func:`preflight` from sync code: keys and host as ``run_import`` takes them.

    ``sandbox=True`` checks against a throwaway local sandbox instead: its default schema,
    or ``sandbox_schema`` (a file written by ``lsq-import account --output``).
    """

    async def work(client: LeadSquaredClient) -> PreflightReport:
        return await preflight(client, mapping)

    endpoint = resolve_endpoint(
        host=host,
        credentials=credentials,
        env_file=env_file,
        sandbox=sandbox,
        sandbox_schema=sandbox_schema,
    )
    return asyncio.run(_with_client(endpoint, timeout, work))


def read_lead_fields(
    *,
    host: str | None = None,
    credentials: Credentials | None = None,
    env_file: str | os.PathLike[str] | None = None,
    sandbox: bool = False,
    timeout: float = 60.0,
) -> list[dict[str, Any]]:
    """:func:`fetch_lead_fields` from sync code (``init-mapping --online``)."""

    async def work(client: LeadSquaredClient) -> list[dict[str, Any]]:
        return await fetch_lead_fields(client)

    endpoint = resolve_endpoint(
        host=host, credentials=credentials, env_file=env_file, sandbox=sandbox
    )
    return asyncio.run(_with_client(endpoint, timeout, work))
