"""The account's metadata: paced metadata GETs, and the account read whole (``lsq-import account``).

Why: a mapping is written for one account, with its activity codes, its fields and their
dropdown options. Read them once and a user can list them while writing the mapping, and write
them as a sandbox schema (the format :meth:`importer.sandbox.SandboxSchema.from_file` reads), so
that ``run --sandbox --schema FILE`` rehearses that mapping against a copy of the account
before a single call reaches it.

Three endpoints (``docs: leadsquared-api.md``, "Metadata for preflight checks"):

1. ``ActivityTypes.Get``: the activity types (code, name, display name);
2. ``CustomActivity/GetActivitySetting?code=N``: one type's fields, once per type;
3. ``LeadsMetaData.Get``: the lead fields (custom field sets with their fields).

Every GET goes through :class:`MetadataReader`: through the pacer, like every call, retried when
throttled or lost, a refusal of the keys or the host raised as :class:`FatalApiError` (exit 3).
The preflight (:mod:`importer.preflight`) reads through it too.

From sync code::

    found = read_account(host="api-in21.leadsquared.com")
    found.write("account-schema.yaml")      # for lsq-import sandbox --schema
    print(found.to_text())
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .exceptions import FatalApiError, ImporterError
from .leadsquared.classify import Kind, classify_read, read_unanswered
from .leadsquared.client import (
    ACTIVITY_SETTING_PATH,
    ACTIVITY_TYPES_PATH,
    LEAD_METADATA_PATH,
    LeadSquaredClient,
)
from .leadsquared.connect import connect, refused_message, resolve_endpoint
from .sending.attempt import attempt_with_retries
from .sending.pacer import Pacer
from .sending.retry import RetryPolicy
from .settings import Credentials

if TYPE_CHECKING:
    from .sandbox.schema import SandboxSchema

__all__ = [
    "AccountError",
    "AccountSchema",
    "MetadataAnswer",
    "MetadataReader",
    "fetch_account",
    "read_account",
]

_SHOW = 12  # options listed per field before "... (N more)"


class AccountError(ImporterError):
    """The account's metadata could not be read (no answer, an error, not the documented
    shape), or the command asked for what the account does not have: exit 2, like the
    run's preflight."""


# --------------------------------------------------------------------------------------------
# Paced metadata GETs


class MetadataAnswer(NamedTuple):
    """What a metadata GET came to: its kind, the JSON body, and a one-line description of a
    failure ("" on success)."""

    kind: Kind
    body: Any
    problem: str


class MetadataReader:
    """Metadata GETs: paced through ``pacer`` when given (so they take slots like any call,
    and throttling closes the window for everyone), retried when throttled or lost; a fatal
    answer (401, 404, a redirect) raises :class:`FatalApiError`. ``calls`` counts attempts."""

    def __init__(
        self,
        client: LeadSquaredClient,
        pacer: Pacer | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.pacer = pacer
        self.retry = retry or RetryPolicy(max_attempts=3)
        self.sleep = sleep
        self.calls = 0

    def _count(self) -> None:
        self.calls += 1

    async def get(self, path: str, params: dict[str, str] | None = None) -> MetadataAnswer:
        """GET ``path``; its answer once it succeeded, failed for good or ran out of tries."""
        found, _ = await attempt_with_retries(
            functools.partial(self.client.get, path, params),
            pacer=self.pacer,
            retry=self.retry,
            judge=classify_read,
            lost=read_unanswered,  # a GET is safe to repeat
            sleep=self.sleep,
            before=self._count,
        )
        if found.kind is Kind.FATAL:
            url = self.client.base_url + path
            raise FatalApiError(
                refused_message(found.status, url, redirect_to=self.client.refused_redirect)
            )
        return MetadataAnswer(found.kind, found.body, found.problem)


# --------------------------------------------------------------------------------------------
# The account, read whole


@dataclass
class AccountSchema:
    """An account's activity types and lead fields, as its metadata endpoints answered, tidied
    into the sandbox schema's shapes (see :class:`importer.sandbox.SandboxSchema`).

    ``activity_types``: ``ActivityEvent`` (int), ``ActivityEventName``, ``DisplayName``, and
    ``Fields`` (``GetActivitySetting``'s) when they were read. ``lead_fields``:
    ``LeadsMetaData.Get``'s items, None when not read. ``events``: the types asked for (the
    listing shows their fields). ``warnings``: what the account answered that a sandbox schema
    cannot hold (left out), and the types whose fields could not be read.
    """

    base_url: str
    activity_types: list[dict[str, Any]]
    lead_fields: list[dict[str, Any]] | None
    events: tuple[int, ...] = ()
    calls: int = 0
    warnings: list[str] = field(default_factory=list)
    path: Path | None = None
    """Where :meth:`write` wrote the schema."""

    def schema_data(self) -> dict[str, Any]:
        """``{"lead_fields": [...], "activity_types": [...]}``, checked and with the defaults
        filled in as :meth:`SandboxSchema.from_file` fills them, i.e. what a sandbox serves."""
        from .sandbox.schema import validate_schema_data

        if self.lead_fields is None or any("Fields" not in t for t in self.activity_types):
            raise ValueError("read the lead fields and the activity fields to make a schema")
        data = {"lead_fields": self.lead_fields, "activity_types": self.activity_types}
        return validate_schema_data(data, f"the account at {self.base_url}")

    def to_schema(self) -> SandboxSchema:
        """The account as a :class:`SandboxSchema` (a sandbox that mirrors it)."""
        from .sandbox.schema import SandboxSchema

        return SandboxSchema(**self.schema_data())

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the schema to ``path`` (JSON for ``.json``, else YAML: what ``lsq-import
        sandbox --schema`` reads), replacing the file whole: a failed write leaves the old."""
        import yaml

        target = Path(path)
        data = self.schema_data()
        if target.suffix.lower() == ".json":
            text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
        else:
            when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
            text = (
                f"# The LeadSquared account at {self.base_url}, read by lsq-import account on "
                f"{when}.\n# Serve it: lsq-import sandbox --schema {target.name}\n"
                f"# Rehearse: lsq-import run INPUT --mapping MAPPING --sandbox --schema "
                f"{target.name}\n"
                + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
            )
        # Beside the target, so the replace is atomic; made by open() so the umask sets its
        # mode, as for any file the user writes (it holds no secret).
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8", newline="\n") as out:
                out.write(text)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.path = target

    def to_text(self) -> str:
        """What was written (after :meth:`write`), else a readable listing: the activity
        types, the lead fields, and the fields of each type in ``events``."""
        if self.path is not None:
            lines = [
                f"wrote {self.path}: {len(self.activity_types)} activity types, "
                f"{len(self.lead_fields or ())} lead fields of the account at {self.base_url} "
                f"({self.calls} metadata calls); rehearse a mapping against it with "
                f"--sandbox --schema {self.path}"
            ]
        else:
            lines = self._listing()
        lines.extend(f"warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)

    def _listing(self) -> list[str]:
        lines = [f"The account at {self.base_url} ({self.calls} metadata calls)"]
        if self.events:
            for t in self.activity_types:
                fields = t.get("Fields") or []
                lines += ["", f"Activity {_type_name(t)}: {_count(fields, 'field')}"]
                lines += _table(_field_rows(fields, "OptionSet")) or ["  (no fields)"]
            return lines
        lines += ["", f"Activity types ({len(self.activity_types)}):"]
        lines += _table(
            [(str(t["ActivityEvent"]), _type_name(t, code=False)) for t in self.activity_types]
        )
        if self.lead_fields is not None:
            lines += ["", f"Lead fields ({len(self.lead_fields)}): name, display name, type"]
            lines += _table(_field_rows(self.lead_fields, "Options"))
        lines += ["", "The fields of one activity type: lsq-import account --event CODE"]
        return lines


def _type_name(t: dict[str, Any], *, code: bool = True) -> str:
    name = str(t.get("DisplayName") or t.get("ActivityEventName") or "")
    system = t.get("ActivityEventName")
    shown = f"{name} ({system})" if system and system != name else name
    return f"{t['ActivityEvent']} {shown}" if code else shown


def _count(items: Collection[Any], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _field_rows(fields: Iterable[dict[str, Any]], options_key: str) -> list[tuple[str, ...]]:
    """One row per field (custom field set sub-fields as ``Set.Field``): name, display name,
    type, and what else matters to a mapping (mandatory, lead identifier, options)."""
    rows: list[tuple[str, ...]] = []
    for f in fields:
        rows.append(_field_row(f, options_key, ""))
        subs = f.get("Fields")
        for sub in subs if isinstance(subs, list) else ():
            rows.append(_field_row(sub, options_key, f"{f['SchemaName']}."))
    return rows


def _field_row(f: dict[str, Any], options_key: str, prefix: str) -> tuple[str, ...]:
    notes = []
    if f.get("IsMandatory"):
        notes.append("mandatory")
    if f.get("IsLeadIdentifier"):
        notes.append("lead identifier")
    options = [_option_text(o) for o in f.get(options_key) or ()]
    if options:
        more = f", ... ({len(options) - _SHOW} more)" if len(options) > _SHOW else ""
        notes.append("options: " + ", ".join(options[:_SHOW]) + more)
    name = f"{prefix}{f['SchemaName']}"
    display = str(f.get("DisplayName") or "")
    return (name, display, str(f.get("DataType") or ""), "; ".join(notes))


def _option_text(option: Any) -> str:
    if isinstance(option, dict):
        value, text = option.get("Value"), option.get("Text")
        return f'{value} ("{text}")' if text and text != value else str(value)
    return str(option)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as lines, columns aligned, indented by two spaces."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  "
        + "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]


async def fetch_account(
    client: LeadSquaredClient,
    *,
    pacer: Pacer | None = None,
    events: Collection[int] = (),
    activity_fields: bool = True,
    lead_fields: bool = True,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> AccountSchema:
    """Read the account behind ``client``: its activity types, then (``activity_fields``)
    each type's fields, and (``lead_fields``) the lead fields, all through ``pacer``.

    ``events``: only these activity types (an unknown code raises :class:`AccountError`
    naming the account's codes). A type whose fields cannot be read is kept without fields,
    with a warning. Raises :class:`AccountError` when the types or the lead fields cannot be
    read, :class:`FatalApiError` when the keys or the host are refused.
    """
    reader = MetadataReader(client, pacer, retry, sleep)
    url = client.base_url
    warnings: list[str] = []
    tasks: list[asyncio.Task[MetadataAnswer]] = []
    try:
        # The lead fields do not depend on the types: asked for meanwhile.
        leads = asyncio.create_task(reader.get(LEAD_METADATA_PATH)) if lead_fields else None
        tasks.extend([leads] if leads else [])
        types = _activity_types(await reader.get(ACTIVITY_TYPES_PATH), url, warnings)
        types = _chosen(types, events, url)
        settings = [
            asyncio.create_task(
                reader.get(ACTIVITY_SETTING_PATH, {"code": str(t["ActivityEvent"])})
            )
            for t in (types if activity_fields else ())
        ]
        tasks.extend(settings)
        for t, task in zip(types, settings, strict=False):
            t["Fields"] = _activity_fields(t["ActivityEvent"], await task, warnings)
        found_leads = None
        if leads is not None:
            found_leads = _lead_fields(await leads, url, warnings)
    finally:
        for task in tasks:  # done ones are left as they are; the rest are not needed now
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return AccountSchema(
        base_url=url,
        activity_types=types,
        lead_fields=found_leads,
        events=tuple(events),
        calls=reader.calls,
        warnings=warnings,
    )


def _unreadable(url: str, problem: str) -> AccountError:
    return AccountError(
        f"{url} {problem}; check --host, or retry later if LeadSquared is unavailable"
    )


def _activity_types(answer: MetadataAnswer, base: str, warnings: list[str]) -> list[dict[str, Any]]:
    url = base + ACTIVITY_TYPES_PATH
    if answer.kind is not Kind.SUCCESS or not isinstance(answer.body, list):
        raise _unreadable(url, answer.problem or "did not answer with a list of activity types")
    types: dict[int, dict[str, Any]] = {}
    for i, item in enumerate(answer.body):
        raw = item.get("ActivityEvent") if isinstance(item, dict) else None
        code = _integer(raw)
        if code is None:
            warnings.append(
                f"ActivityTypes.Get item {i} has no integer ActivityEvent ({raw!r}): left out"
            )
            continue
        if code in types:
            warnings.append(f"activity type {code} is listed twice: the first is kept")
            continue
        t: dict[str, Any] = {"ActivityEvent": code}
        for key in ("ActivityEventName", "DisplayName"):
            if isinstance(item.get(key), str) and item[key]:
                t[key] = item[key]
        types[code] = t
    return list(types.values())


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _chosen(types: list[dict[str, Any]], events: Collection[int], url: str) -> list[dict[str, Any]]:
    if not events:
        return types
    known = {t["ActivityEvent"] for t in types}
    missing = [code for code in events if code not in known]
    if missing:
        listed = ", ".join(_type_name(t) for t in types[:_SHOW]) or "none"
        if len(types) > _SHOW:
            listed += f", ... ({len(types) - _SHOW} more)"
        raise AccountError(
            f"--event {missing[0]}: not an activity type of the account at {url}; it has {listed}"
        )
    return [t for t in types if t["ActivityEvent"] in events]


def _activity_fields(
    code: int, answer: MetadataAnswer, warnings: list[str]
) -> list[dict[str, Any]]:
    body = answer.body
    if answer.kind is not Kind.SUCCESS or not isinstance(body, dict):
        warnings.append(
            f"the fields of activity type {code} could not be read (GetActivitySetting "
            f"{answer.problem or 'answered without its Fields'}): it has none in the schema"
        )
        return []
    return _clean_fields(body.get("Fields"), "OptionSet", f"activity type {code}", warnings)


def _lead_fields(answer: MetadataAnswer, base: str, warnings: list[str]) -> list[dict[str, Any]]:
    if answer.kind is not Kind.SUCCESS or not isinstance(answer.body, list):
        raise _unreadable(
            base + LEAD_METADATA_PATH, answer.problem or "did not answer with a list of lead fields"
        )
    return _clean_fields(answer.body, "Options", "the lead fields", warnings)


def _clean_fields(
    items: Any, options_key: str, where: str, warnings: list[str], *, nested: bool = False
) -> list[dict[str, Any]]:
    """The field objects as the account gave them, less what a sandbox schema cannot hold
    (each left out is warned about): items without a SchemaName, a second field of the same
    name, a DataType or MaxLength that is not one, options that are not options, a custom
    field set inside another."""
    from .sandbox.schema import option_value

    if not isinstance(items, list):
        if items is not None:
            warnings.append(f"{where}: Fields is not a list: no fields kept")
        return []
    out: dict[str, dict[str, Any]] = {}
    for i, raw in enumerate(items):
        name = raw.get("SchemaName") if isinstance(raw, dict) else None
        if not isinstance(name, str) or not name.strip():
            warnings.append(f"{where}: field {i} has no SchemaName: left out")
            continue
        if name in out:
            warnings.append(f"{where}: {name} is listed twice: the first is kept")
            continue
        f = dict(raw)
        if "DataType" in f and not isinstance(f["DataType"], str):
            f.pop("DataType")
        if f.get("MaxLength") not in ("", None) and _integer(str(f["MaxLength"])) is None:
            warnings.append(f"{where}: {name}'s MaxLength {f.pop('MaxLength')!r} is not a number")
        options = f.get(options_key)
        if options is not None:
            kept = (
                [o for o in options if option_value(o) is not None]
                if isinstance(options, list)
                else []
            )
            if not isinstance(options, list) or len(kept) < len(options):
                warnings.append(f"{where}: {name} has options without a text Value: left out")
            f[options_key] = kept
        if str(f.get("DataType", "")).lower() == "customobject":
            if nested:
                warnings.append(f"{where}: {name} is a custom field set inside another: left out")
                continue
            f["Fields"] = _clean_fields(
                f.get("Fields"), options_key, f"{where}, {name}", warnings, nested=True
            )
        out[name] = f
    return list(out.values())


def read_account(
    *,
    host: str | None = None,
    credentials: Credentials | None = None,
    env_file: str | os.PathLike[str] | None = None,
    events: Collection[int] = (),
    activity_fields: bool = True,
    lead_fields: bool = True,
    rate: int = 25,
    per: float = 5.0,
    timeout: float = 60.0,
) -> AccountSchema:
    """:func:`fetch_account` from sync code: host and keys as ``run_import`` takes them
    (``$LSQ_HOST``, ``$LSQ_ACCESS_KEY``/``$LSQ_SECRET_KEY``, ``env_file``), the calls paced
    to ``rate`` per ``per`` seconds like a run's."""
    endpoint = resolve_endpoint(host=host, credentials=credentials, env_file=env_file)

    async def main() -> AccountSchema:
        async with connect(endpoint, timeout=timeout, connections=rate) as client:
            return await fetch_account(
                client,
                pacer=Pacer(rate, per),
                events=events,
                activity_fields=activity_fields,
                lead_fields=lead_fields,
            )

    return asyncio.run(main())
