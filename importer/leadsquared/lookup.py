"""Lookups: find a lead by its ``SearchBy`` value and list its activities of one type.

What they are for: a row whose CreateCustom answer was lost (``unknown``) may or may not have
landed; asking LeadSquared settles it. The calls, as the fact sheet (``leadsquared-api.md``,
"Looking things up") and LeadSquared's API pages give them:

- ``EmailAddress`` -> ``GET LeadManagement.svc/Leads.GetByEmailaddress?emailaddress=...``:
  a list of lead objects, ``[]`` when there is none;
- ``Phone``/``Mobile`` -> ``GET LeadManagement.svc/RetrieveLeadByPhoneNumber?phone=...``,
  with the value's digits only (the docs: no spaces, hyphens or other characters; with or
  without the country code). It searches Phone *and* Mobile and, when several leads match,
  answers only the one with the latest activity; so the leads it answers are kept only when
  their ``search_by`` field has those digits, and an answer whose leads all match on the
  other field raises :class:`LookupFailed` (the lead the upsert used may be hidden behind it);
- ``ProspectId`` -> the value is the lead id: no call (CreateCustom never creates a lead
  when it searches by ProspectId);
- any other attribute -> ``POST LeadManagement.svc/Leads.Get`` with ``{"Parameter":
  {"LookupName", "LookupValue", "SqlOperator": "="}, "Columns": {"Include_CSV":
  "ProspectID"}, "Paging": {"PageIndex", "PageSize"}}`` (``PageIndex`` from 1): a list of
  leads, read page by page until a page is short;
- activities -> ``POST ProspectActivity.svc/Retrieve?leadId=...`` with ``{"Parameter":
  {"ActivityEvent": N}, "Paging": {"Offset", "RowCount"}}``: ``{"RecordCount": total,
  "ProspectActivities": [{"Id", "EventCode", "CreatedOn", ..., "Data": ...}]}``, where
  ``Data`` holds the activity's own properties (its note as ``ActivityEvent_Note``, custom
  fields by schema name) either as ``[{"Key", "Value"}]`` (LeadSquared's examples and the
  client code in the wild) or as an object; an ``ActivityFields`` object is read too.

Paging the activities: the docs contradict themselves ("Offset: Specifies the page number",
with ``"Offset": "0"`` in one example and ``"Offset": "1"`` in another for "more than 25"),
so nothing here depends on what Offset means. Pages are read as row offsets first; a page
that brings nothing new switches to page numbers (1, 2, ...; a repeat of the first page is
allowed once, for numbering from 1). Activities are collected by Id, and the answer is only
taken once as many distinct activities were read as ``RecordCount`` says; otherwise
:class:`LookupFailed`. A lookup that cannot be sure never answers "none".

Every call is paced through the run's :class:`~importer.sending.pacer.Pacer` exactly like a
CreateCustom call (a slot is taken, and released when the answer is in), checks ``may_call``
first (the run's ``--max-calls``), and is classified by
:func:`~importer.leadsquared.classify.classify_read` and retried under the
:class:`~importer.sending.retry.RetryPolicy`: a lookup changes nothing, so lost answers,
5xx, throttling and unreadable bodies are all tried again. Use::

    lookups = Lookups(client, pacer, RetryPolicy(), may_call=budget.take)
    for lead_id in await lookups.leads("EmailAddress", "a@example.com"):
        for found in await lookups.activities(lead_id, 105):
            ...  # found.id, found.note, found.fields["mx_Custom_1"]
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..exceptions import FatalApiError
from ..sending.attempt import attempt_with_retries
from ..sending.pacer import Pacer
from ..sending.retry import RetryPolicy
from .classify import MAX_ID, Kind, classify_read, read_unanswered
from .client import (
    ACTIVITIES_OF_LEAD_PATH,
    LEAD_BY_PHONE_PATH,
    LEADS_BY_EMAIL_PATH,
    LEADS_GET_PATH,
    LeadSquaredClient,
)
from .connect import refused_message

__all__ = ["BudgetExhausted", "FoundActivity", "LookupFailed", "Lookups"]

NOTE_KEY = "ActivityEvent_Note"
"""The key of an activity's note in ``Data`` (``ActivityNote`` at the top level is read too)."""
DATE_TIME_KEY = "ActivityDateTime"
"""The key of an activity's own date-time, where an answer carries it."""

PAGE_SIZE = 50
"""Rows asked for per page (``RowCount``, ``PageSize``): the docs show 50 for activities."""
MAX_LEAD_PAGES = 20
"""At most this many pages of ``Leads.Get``: a SearchBy value names one lead (two or three
after a racy upsert), so more than ``20 * page_size`` means the field is not a key."""
_PHONE_SEARCHES = frozenset({"phone", "mobile"})
_MAX_COUNTRY_CODE = 3  # digits a phone number may carry in front of the national number
_NOT_DIGITS = re.compile(r"\D")


@dataclass(frozen=True)
class FoundActivity:
    """One activity of a lead, as ``ProspectActivity.svc/Retrieve`` described it.

    Text is as the server gave it (with the keys hidden, as in every answer): compare it with
    what a row sent knowing that LeadSquared lists non-empty custom fields only (a field sent
    empty is absent here), and a custom field set comes back as a JSON text.
    """

    id: str
    event: int
    created_on: str
    """``CreatedOn`` as the server says it (UTC ``YYYY-MM-DD HH:MM:SS``), "" if absent."""
    date_time: str
    """The activity's own date-time (``ActivityDateTime`` in ``Data``, or at the top level)
    when the answer carries it, else "". (LeadSquared's ``CreatedOn`` may itself be the
    activity's date-time: its examples show whole minutes there.)"""
    note: str
    """``ActivityEvent_Note`` from ``Data`` (or ``ActivityNote``), "" if absent."""
    fields: dict[str, str]
    """Every ``Data`` entry (and ``ActivityFields`` entry) as key -> text: custom fields by
    schema name (``mx_Custom_1``) and whatever system properties the server adds; None is
    "", numbers and nested values are their JSON text."""


class LookupFailed(Exception):
    """A lookup that could not be answered (after the retries the policy allows): the server
    kept failing, refused it (an MX error), or answered in a shape that cannot be trusted.

    ``reason`` is one line with the keys hidden, e.g. ``"Leads.GetByEmailaddress answered
    HTTP 500: Internal Server Error (after 5 attempts)"``: what a row left ``unknown`` by it
    can say.
    """

    def __init__(self, reason: str) -> None:
        self.reason = " ".join(reason.split())
        super().__init__(self.reason)


class BudgetExhausted(Exception):
    """``may_call`` said no before an attempt: the run's ``--max-calls`` would be exceeded.
    Nothing was sent for that attempt; what the lookup read before is dropped."""


class Lookups:
    """The read calls of one run, paced, budgeted and retried like its CreateCustom calls.

    ``pacer``: the run's :class:`Pacer` (None: unpaced, for one-off use); ``retry``: the
    run's policy (None: the default one); ``may_call``: asked before every attempt, retries
    and pages included; False raises :class:`BudgetExhausted` and sends nothing, True means
    exactly one call follows (so a ``may_call`` that takes one call from a budget keeps it
    exact); ``sleep``: the backoff's sleep (a test passes a fake); ``page_size``: rows asked
    for per page.

    :attr:`calls` counts the calls made (every attempt of every page). A 401, 404 or a
    redirect raises :class:`~importer.exceptions.FatalApiError` (the run cannot go on), any
    other failure :class:`LookupFailed`.
    """

    def __init__(
        self,
        client: LeadSquaredClient,
        pacer: Pacer | None,
        retry: RetryPolicy | None = None,
        *,
        may_call: Callable[[], bool] = lambda: True,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        page_size: int = PAGE_SIZE,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.client = client
        self.pacer = pacer
        self.retry = retry or RetryPolicy()
        self.may_call = may_call
        self.sleep = sleep
        self.page_size = page_size
        self.calls = 0

    # ---- leads ----------------------------------------------------------------------------

    async def leads(self, search_by: str, value: str) -> list[str]:
        """The ids of the leads whose ``search_by`` attribute is ``value``, as CreateCustom's
        ``SearchBy`` would find them; ``[]`` when there is none. Order as the server gave
        them, without repeats."""
        attribute = search_by.strip()
        value = value.strip()
        if not value:  # CreateCustom refuses an empty SearchBy value: nothing to look for
            raise LookupFailed(f"no {attribute} value to look the lead up by")
        kind = attribute.casefold()
        if kind == "prospectid":
            return [value]
        if kind == "emailaddress":
            body = await self._ask(
                "Leads.GetByEmailaddress", LEADS_BY_EMAIL_PATH, params={"emailaddress": value}
            )
            return _lead_ids(body, "Leads.GetByEmailaddress")
        if kind in _PHONE_SEARCHES:
            return await self._leads_by_phone(attribute, value)
        return await self._leads_by_field(attribute, value)

    async def _leads_by_phone(self, attribute: str, value: str) -> list[str]:
        what = "RetrieveLeadByPhoneNumber"
        digits = _NOT_DIGITS.sub("", value)
        if not digits:
            raise LookupFailed(f"{what}: the {attribute} value has no digits to look up by")
        body = await self._ask(what, LEAD_BY_PHONE_PATH, params={"phone": digits})
        leads = _lead_objects(body, what)
        kept = [lead for lead in leads if _same_phone(lead.get(attribute), digits)]
        if leads and not kept:
            raise LookupFailed(
                f"{what} answered {len(leads)} lead(s) matching on another field than "
                f"{attribute}; it answers one lead per number, so the lead searched for may "
                "be hidden"
            )
        return _ids_of(kept, what)

    async def _leads_by_field(self, attribute: str, value: str) -> list[str]:
        what = "Leads.Get"
        found: dict[str, None] = {}
        for page in range(1, MAX_LEAD_PAGES + 1):
            body = {
                "Parameter": {"LookupName": attribute, "LookupValue": value, "SqlOperator": "="},
                "Columns": {"Include_CSV": "ProspectID"},
                "Paging": {"PageIndex": page, "PageSize": self.page_size},
            }
            answer = await self._ask(what, LEADS_GET_PATH, body=body)
            ids = _lead_ids(answer, what)
            new = [lead_id for lead_id in ids if lead_id not in found]
            found.update(dict.fromkeys(new))
            if len(ids) < self.page_size or not new:  # the last page (or paging ignored)
                return list(found)
        raise LookupFailed(
            f"{what}: more than {MAX_LEAD_PAGES * self.page_size} leads have this "
            f"{attribute}; it is not a key that finds one lead"
        )

    # ---- activities -----------------------------------------------------------------------

    async def activities(self, lead_id: str, event: int) -> list[FoundActivity]:
        """Every activity of type ``event`` on the lead, read over as many pages as it takes
        (see the module docstring), each once, in the order they were first read (the
        server's order when Offset is a row offset)."""
        what = "ProspectActivity.svc/Retrieve"
        lead_id = lead_id.strip()
        if not lead_id:
            raise ValueError("lead_id must not be empty")
        seen: dict[str, FoundActivity] = {}
        by_rows = True  # Offset as a row offset; False: as a page number
        offset, page, repeats, pages = 0, 0, 0, 0
        limit: int | None = None
        while True:
            body = {
                "Parameter": {"ActivityEvent": event},
                "Paging": {"Offset": str(offset), "RowCount": str(self.page_size)},
            }
            answer = await self._ask(
                what, ACTIVITIES_OF_LEAD_PATH, params={"leadId": lead_id}, body=body
            )
            pages += 1
            total, items = _activity_page(answer, what)
            new = 0
            for item in items:
                found = _activity(item, event, what)
                if found.id not in seen:
                    seen[found.id] = found
                    new += 1
            if len(seen) >= total:
                return [found for found in seen.values() if found.event == event]
            if limit is None:  # generous: every page twice over, and the switch of reading
                limit = 2 * math.ceil(total / max(1, len(items) or self.page_size)) + 4
            if new:
                repeats = 0
            elif by_rows:  # a row offset past the rows read brought nothing: page numbers
                by_rows, page = False, 0
            elif items and page == 1 and repeats == 0:
                repeats = 1  # page 1 repeated page 0: the pages are numbered from 1
            else:
                raise LookupFailed(
                    f"{what} listed {len(seen)} of the {total} activities its RecordCount "
                    "gives, and paging brought no more"
                )
            if pages >= limit:
                raise LookupFailed(
                    f"{what}: {pages} pages read {len(seen)} of {total} activities; paging "
                    "does not advance"
                )
            if by_rows:
                offset = len(seen)
            else:
                page += 1
                offset = page

    # ---- one call -------------------------------------------------------------------------

    def _before_attempt(self, what: str) -> None:
        if not self.may_call():
            raise BudgetExhausted(f"{what}: the call budget (--max-calls) is spent")
        self.calls += 1

    async def _ask(
        self,
        what: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        """The JSON body of a successful answer to one lookup call, retried as the policy
        allows; raises FatalApiError, LookupFailed or BudgetExhausted."""
        if body is None:
            send = functools.partial(self.client.get, path, params)
        else:
            send = functools.partial(self.client.post, path, body, params)
        found, attempts = await attempt_with_retries(
            send,
            pacer=self.pacer,
            retry=self.retry,
            judge=classify_read,
            lost=read_unanswered,
            sleep=self.sleep,
            before=functools.partial(self._before_attempt, what),
        )
        if found.kind is Kind.FATAL:
            url = self.client.base_url + path
            raise FatalApiError(
                refused_message(found.status, url, redirect_to=self.client.refused_redirect)
            )
        if found.kind is not Kind.SUCCESS:
            tries = f" (after {attempts} attempts)" if attempts > 1 else ""
            raise LookupFailed(self.client.scrub.text(f"{what} {found.problem}{tries}"))
        return found.body


# ---- reading the answers ---------------------------------------------------------------------


def _an_id(value: Any) -> str:
    """``value`` when it can be an Id (printable ASCII, at most MAX_ID characters), else ""."""
    if not isinstance(value, str):
        return ""
    value = value.strip()
    ok = 0 < len(value) <= MAX_ID and value.isascii() and value.isprintable()
    return value if ok else ""


def _lead_objects(body: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        shape = type(body).__name__ if not isinstance(body, list) else "list of other things"
        raise LookupFailed(f"{what} answered a JSON {shape}, not a list of leads")
    return body


def _ids_of(leads: list[dict[str, Any]], what: str) -> list[str]:
    ids: dict[str, None] = {}
    for lead in leads:
        lead_id = _an_id(lead.get("ProspectID", lead.get("ProspectId")))
        if not lead_id:
            raise LookupFailed(f"{what} answered a lead without a usable ProspectID")
        ids[lead_id] = None
    return list(ids)


def _lead_ids(body: Any, what: str) -> list[str]:
    return _ids_of(_lead_objects(body, what), what)


def _same_phone(stored: Any, digits: str) -> bool:
    """Whether a lead's phone field holds ``digits``, with or without a country code."""
    if not isinstance(stored, str):
        return False
    have = _NOT_DIGITS.sub("", stored)
    if not have:
        return False
    short, long = sorted((have, digits), key=len)
    return long.endswith(short) and len(long) - len(short) <= _MAX_COUNTRY_CODE


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _activity_page(body: Any, what: str) -> tuple[int, list[dict[str, Any]]]:
    """(RecordCount, the page's activity objects) of a Retrieve answer."""
    if not isinstance(body, dict):
        raise LookupFailed(f"{what} answered a JSON {type(body).__name__}, not its object")
    total = _count(body.get("RecordCount"))
    if total is None:
        raise LookupFailed(f"{what} answered without a RecordCount")
    items = body.get("ProspectActivities")
    if items is None:
        items = []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise LookupFailed(f"{what} answered ProspectActivities that are not activity objects")
    return total, items


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _properties(item: dict[str, Any]) -> dict[str, str]:
    """An activity's ``Data`` (a list of Key/Value pairs, or an object) and ``ActivityFields``
    as one key -> text mapping."""
    found: dict[str, str] = {}
    for part in (item.get("ActivityFields"), item.get("Data")):
        if isinstance(part, dict):
            found.update({str(k): _text(v) for k, v in part.items()})
        elif isinstance(part, list):
            for pair in part:
                if isinstance(pair, dict) and isinstance(pair.get("Key"), str):
                    found[pair["Key"]] = _text(pair.get("Value"))
    return found


def _activity(item: dict[str, Any], event: int, what: str) -> FoundActivity:
    activity_id = _an_id(item.get("Id", item.get("ID", item.get("ProspectActivityId"))))
    if not activity_id:
        raise LookupFailed(f"{what} answered an activity without a usable Id")
    code = _count(item.get("EventCode", item.get("ActivityEvent")))
    fields = _properties(item)
    note = fields.get(NOTE_KEY) or _text(item.get("ActivityNote"))
    return FoundActivity(
        id=activity_id,
        event=event if code is None else code,
        created_on=_text(item.get("CreatedOn")),
        date_time=fields.get(DATE_TIME_KEY) or _text(item.get(DATE_TIME_KEY)),
        note=note,
        fields=fields,
    )
