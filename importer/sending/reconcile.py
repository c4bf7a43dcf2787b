"""Settling ``unknown`` rows by asking LeadSquared whether their activity exists.

A row is ``unknown`` when its call may have landed: the connection dropped after sending, the
answer could not be read, or the run was killed while the call was out. Sending it again could
post its activity twice; never sending it could lose it. :func:`settle` finds out instead:

1. the row's lead, by the SearchBy value the row sent (:meth:`Lookups.leads`): no lead means the
   upsert never ran, so neither did the activity;
2. the activities of that lead (each lead, if the account holds duplicates) of the mapping's
   event (:meth:`Lookups.activities`);
3. the row's activity among them:

   - **with a row token** (``options.row_token``, see :mod:`importer.sending.token`): the
     activity whose token field holds the row's token. Exact: found, or not there.
   - **without one**, by content: same event, date-time, note and activity fields as the row
     sent. Activities already recorded for ``success`` rows are left out. One row and one
     match: found. No match: not there. Anything else (two rows of identical content, or a
     second activity that looks the same) cannot be told apart, and the rows stay ``unknown``
     with the reason ``ambiguous: N matching activities`` rather than a guess; the token
     exists to make this case impossible.

A lookup that fails (after its retries) leaves its rows ``unknown`` with the reason. The one
way this can still be wrong is a read side that lags: an activity created but not yet visible
looks missing. The caller waits a settle delay before asking, and looks again once before it
re-sends a row whose lead exists (see :class:`Verdict`).
"""

from __future__ import annotations

import asyncio
import enum
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..mapping import Payload


class FoundActivityLike(Protocol):
    id: str
    event: int
    date_time: str
    note: str
    fields: dict[str, str]


class LookupsLike(Protocol):
    async def leads(self, search_by: str, value: str) -> list[str]: ...

    async def activities(self, lead_id: str, event: int) -> Sequence[FoundActivityLike]: ...


class Verdict(enum.Enum):
    FOUND = "found"
    """The row's activity exists: the row is ``success`` with its ids."""
    MISSING = "missing"
    """No lead, or no such activity: the row never landed and may be sent (once)."""
    AMBIGUOUS = "ambiguous"
    """Several activities could be this row's: it stays ``unknown``."""
    FAILED = "failed"
    """A lookup could not be answered: the row stays ``unknown``."""


@dataclass(frozen=True)
class Settled:
    row: int
    verdict: Verdict
    activity_id: str = ""
    lead_id: str = ""
    reason: str = ""
    lead_exists: bool = False
    """MISSING only: the lead was found (a lagging read side would hide the activity alone)."""


@dataclass(frozen=True)
class Pending:
    """An ``unknown`` row and what it sent (its payload, token included)."""

    payload: Payload
    token: str = ""

    @property
    def row(self) -> int:
        return self.payload.row

    @property
    def search(self) -> tuple[str, str]:
        """(SearchBy attribute, the value sent for it)."""
        details = self.payload.body["LeadDetails"]
        by = next(d["Value"] for d in details if d.get("Attribute") == "SearchBy")
        value = next(d["Value"] for d in details if d.get("Attribute") == by)
        return str(by), str(value)

    @property
    def event(self) -> int:
        return int(self.payload.body["Activity"]["ActivityEvent"])


@dataclass
class Tally:
    """What a reconciliation found, for the summary."""

    found: int = 0
    missing: int = 0
    ambiguous: int = 0
    failed: int = 0
    lookups: int = 0

    def add(self, verdict: Verdict) -> None:
        setattr(self, verdict.value, getattr(self, verdict.value) + 1)

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _text(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


def content_of(body: dict[str, Any], token_field: str | None = None) -> tuple[Any, ...]:
    """What makes a row's activity the same activity: event, date-time, note, fields."""
    activity = body["Activity"]
    fields = tuple(
        sorted(
            (str(f["SchemaName"]), _text(f.get("Value")))
            for f in activity.get("Fields", [])
            if "Fields" not in f and f.get("SchemaName") != token_field
        )
    )
    return (
        int(activity["ActivityEvent"]),
        _text(activity.get("ActivityDateTime")),
        _text(activity.get("ActivityNote")),
        fields,
    )


_CUSTOM_FIELD = re.compile(r"mx_Custom_\d+")


def _matches(
    found: FoundActivityLike, content: tuple[Any, ...], token_field: str | None = None
) -> bool:
    """The activity has exactly the row's content: its event, note and date-time, the fields
    the row sent, and no other custom field filled in (a row that left a field empty is not an
    activity that has it: the other row of that lead that filled it in is)."""
    event, date_time, note, fields = content
    if found.event != event or _text(found.note) != note:
        return False
    if date_time and _text(found.date_time) not in ("", date_time):
        return False
    sent = dict(fields)
    for name, value in found.fields.items():
        filled = name != token_field and _CUSTOM_FIELD.fullmatch(name) and _text(value)
        if filled and name not in sent:
            return False
    return all(_text(found.fields.get(name)) == value for name, value in fields)


async def settle(
    pending: Iterable[Pending],
    lookups: LookupsLike,
    *,
    token_field: str | None,
    known_ids: set[str] | frozenset[str] = frozenset(),
    concurrency: int = 1,
) -> list[Settled]:
    """The verdict on each pending row (see the module's docstring).

    Leads are looked up ``concurrency`` at a time (every call still takes a pacer slot).
    ``known_ids``: activity ids recorded for ``success`` rows (never taken for another row).
    A lookup that fails, or that the call budget no longer allows, gives its lead's rows
    :attr:`Verdict.FAILED` with the reason; a fatal answer (401, a redirect) propagates.
    """
    from ..leadsquared.lookup import BudgetExhausted, LookupFailed

    by_lead: dict[tuple[str, str, int], list[Pending]] = defaultdict(list)
    for item in pending:
        by, value = item.search
        folded = value.casefold() if by == "EmailAddress" else value
        by_lead[(by, folded, item.event)].append(item)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(by: str, event: int, rows: list[Pending]) -> list[Settled]:
        async with gate:
            try:
                return await _settle_lead(
                    by, rows[0].search[1], event, rows, lookups, token_field, known_ids
                )
            except LookupFailed as exc:
                said = exc.reason
                reason = said if said.startswith("lookup failed") else f"lookup failed: {said}"
            except BudgetExhausted:
                reason = "not looked up: the call budget (--max-calls) ran out first"
            return [Settled(r.row, Verdict.FAILED, reason=reason) for r in rows]

    groups = await asyncio.gather(
        *(one(by, event, rows) for (by, _, event), rows in by_lead.items())
    )
    return [verdict for group in groups for verdict in group]


async def _settle_lead(
    by: str,
    value: str,
    event: int,
    rows: list[Pending],
    lookups: LookupsLike,
    token_field: str | None,
    known_ids: set[str] | frozenset[str],
) -> list[Settled]:
    lead_ids = await lookups.leads(by, value)
    if not lead_ids:
        return [Settled(r.row, Verdict.MISSING, reason=f"no lead with {by} {value}") for r in rows]
    seen: list[tuple[str, FoundActivityLike]] = []
    for lead_id in lead_ids:
        for found in await lookups.activities(lead_id, event):
            seen.append((lead_id, found))
    if token_field is not None and all(r.token for r in rows):
        return [_by_token(r, seen, token_field) for r in rows]
    return _by_content(rows, seen, token_field, known_ids)


def _by_token(row: Pending, seen: list[tuple[str, FoundActivityLike]], field_: str) -> Settled:
    hits = [(lead, a) for lead, a in seen if _text(a.fields.get(field_)) == row.token]
    if not hits:
        # Sent before the mapping had its token (a --force-resume that added it): an
        # activity without a token and with the row's content may be its own.
        untokened = [(lead, a) for lead, a in seen if not _text(a.fields.get(field_))]
        content = content_of(row.payload.body, field_)
        alike = [(lead, a) for lead, a in untokened if _matches(a, content, field_)]
        if len(alike) == 1:
            lead_id, activity = alike[0]
            return Settled(
                row.row, Verdict.FOUND, activity.id, lead_id, "found by its content (no token)"
            )
        if alike:
            return Settled(
                row.row,
                Verdict.AMBIGUOUS,
                reason=f"ambiguous: no activity carries its token {row.token}, and "
                f"{len(alike)} without a token have its content",
            )
        return Settled(
            row.row,
            Verdict.MISSING,
            reason=f"no activity carries its token {row.token}",
            lead_exists=True,
        )
    lead_id, activity = hits[0]
    reason = f"found by its token {row.token}"
    if len(hits) > 1:
        reason += f" ({len(hits)} activities carry it: it was posted {len(hits)} times)"
    return Settled(row.row, Verdict.FOUND, activity.id, lead_id, reason)


def _by_content(
    rows: list[Pending],
    seen: list[tuple[str, FoundActivityLike]],
    token_field: str | None,
    known_ids: set[str] | frozenset[str],
) -> list[Settled]:
    groups: dict[tuple[Any, ...], list[Pending]] = defaultdict(list)
    for r in rows:
        groups[content_of(r.payload.body, token_field)].append(r)
    out: list[Settled] = []
    for content, same in groups.items():
        hits = [
            (lead, a)
            for lead, a in seen
            if a.id not in known_ids and _matches(a, content, token_field)
        ]
        if not hits:
            out.extend(
                Settled(
                    r.row,
                    Verdict.MISSING,
                    reason="no activity of its lead has its content",
                    lead_exists=True,
                )
                for r in same
            )
        elif len(hits) == 1 and len(same) == 1:
            lead_id, activity = hits[0]
            out.append(
                Settled(same[0].row, Verdict.FOUND, activity.id, lead_id, "found by its content")
            )
        else:
            rows_text = f"{len(same)} rows of identical content" if len(same) > 1 else "the row"
            out.extend(
                Settled(
                    r.row,
                    Verdict.AMBIGUOUS,
                    reason=f"ambiguous: {len(hits)} matching activities for {rows_text} "
                    "(a row token, options.row_token, tells them apart)",
                )
                for r in same
            )
    return out


__all__ = [
    "Pending",
    "Settled",
    "Tally",
    "Verdict",
    "content_of",
    "settle",
]
