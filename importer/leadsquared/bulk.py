"""Bulk mode's two calls: what goes into them and what their answers mean, record by record.

A batch of up to :data:`MAX_BATCH` rows goes out as two calls, both under the bulk limit:

1. ``POST /v2/LeadManagement.svc/Lead/Bulk/CreateOrUpdate`` with the rows' ``LeadDetails``
   lists (their ``SearchBy`` entry included): an upsert of each lead, so a call whose answer
   was lost is safe to send again.
2. ``POST /v2/ProspectActivity.svc/Bulk/CustomActivity/Add/ByLeadField?searchBy=<attribute>``
   with one ``{"SearchByValue", "ActivityEvent", "ActivityNote", "ActivityDateTime",
   "Fields"}`` record per row whose lead was taken: not safe to repeat (it posts activities).

The answers (the documented shape of the ByLeadId variant, ``{"Response": [...]}`` with one
entry per record in order, and what the sandbox serves for both): HTTP 200 and a list of
per-record objects, at the top level or under ``Response`` (or ``Message``), each either a
success with an Id (``LeadId``/``Id``/``ProspectId`` for a lead, ``ProspectActivityId``/``Id``
for an activity) or a failure with ``ExceptionType``/``ExceptionMessage`` (or ``Reason``).
When the records carry ``RowNumber`` (1-based position in the request) they are matched by it,
otherwise by position. The exact shapes of LeadSquared's answers are not all documented, so
anything else is judged as a whole (see :func:`classify_bulk`): an answer that cannot be
matched record by record to what was sent is never read as a success.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .classify import ApiResponse, Kind, Outcome, classify, lost_outcome

if TYPE_CHECKING:
    from ..mapping import Mapping

MAX_BATCH = 25
"""The most records LeadSquared's bulk calls take (both endpoints)."""

_LEAD_ID_KEYS = ("LeadId", "Id", "ProspectId", "ProspectID", "RelatedProspectId")
_ACTIVITY_ID_KEYS = ("ProspectActivityId", "Id", "ActivityId")
_MAX_ID = 100


def lead_record(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A row's lead, as the bulk lead call takes it: its CreateCustom ``LeadDetails``."""
    details: list[dict[str, Any]] = body["LeadDetails"]
    return details


def search_of(body: dict[str, Any]) -> tuple[str, str]:
    """(attribute, value) a row's lead is found by: its ``SearchBy`` entry names the
    attribute, whose own entry holds the value."""
    details = body["LeadDetails"]
    attribute = next(
        (str(e.get("Value", "")) for e in details if e.get("Attribute") == "SearchBy"), ""
    )
    value = next((str(e.get("Value", "")) for e in details if e.get("Attribute") == attribute), "")
    return attribute, value


def activity_record(body: dict[str, Any]) -> dict[str, Any]:
    """A row's activity, as the bulk activity call takes it: the CreateCustom ``Activity``
    with the lead's search value in front (``ValidateDropDownOptions`` goes with each
    record: the bulk call has no other place for it)."""
    _, value = search_of(body)
    record: dict[str, Any] = {"SearchByValue": value, **body["Activity"]}
    if body.get("ValidateDropDownOptions"):
        record["ValidateDropDownOptions"] = True
    return record


def bulk_refusal(mapping: Mapping) -> str:
    """Why ``mapping`` cannot go through the bulk endpoints (one line naming the mapping key),
    or "". The bulk lead call takes the lead as CreateCustom does, custom field sets
    included; the bulk activity call documents ``{SchemaName, Value}`` fields only, so an
    activity custom field set would be dropped or refused there: such a mapping is sent
    with ``--mode single``, never half-sent."""
    for target in mapping.targets():
        if target.section == "activity" and target.field_set:
            return (
                f"{target.key}: a custom field set inside the activity, which LeadSquared's "
                "bulk activity call does not take; use --mode single for this mapping"
            )
    return ""


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """What a bulk answer says about one record: ``SUCCESS`` (with ``id``), ``PERMANENT`` (the
    record was refused, with the reason) or ``AMBIGUOUS`` (the record's entry says neither)."""

    kind: Kind
    id: str = ""
    lead_id: str = ""
    error_type: str = ""
    error_message: str = ""


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    """One bulk call judged: per record (``records``, when the answer lists them) or as a whole
    (``outcome``: rate limited, fatal, refused, transient, or ambiguous)."""

    kind: Kind
    outcome: Outcome
    records: tuple[RecordOutcome, ...] = ()

    @property
    def http_status(self) -> int | None:
        return self.outcome.http_status

    @property
    def error_message(self) -> str:
        return self.outcome.error_message


def _an_id(value: Any) -> str:
    ok = isinstance(value, str) and value.strip() and len(value) <= _MAX_ID
    return value if ok and value.isprintable() and value.isascii() else ""


def _entries(body: Any) -> list[Any] | None:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for name in ("Response", "Message", "Details"):
            found = body.get(name)
            if isinstance(found, list):
                return found
    return None


def _record(entry: Any, id_keys: Sequence[str]) -> RecordOutcome:
    if not isinstance(entry, dict):
        return RecordOutcome(Kind.AMBIGUOUS, error_message="the answer's entry is not an object")
    etype = str(entry.get("ExceptionType") or "")
    message = str(entry.get("ExceptionMessage") or entry.get("Reason") or entry.get("Error") or "")
    found = next((_an_id(entry.get(k)) for k in id_keys if _an_id(entry.get(k))), "")
    lead_id = next((_an_id(entry.get(k)) for k in _LEAD_ID_KEYS if _an_id(entry.get(k))), "")
    if etype or message or str(entry.get("Status") or "").lower() in ("error", "failure"):
        return RecordOutcome(
            Kind.PERMANENT,
            error_type=etype,
            error_message=message or "refused, without a reason",
        )
    if found:
        return RecordOutcome(Kind.SUCCESS, id=found, lead_id=lead_id)
    return RecordOutcome(
        Kind.AMBIGUOUS, error_message="the answer's entry has neither an Id nor an error"
    )


def _matched(entries: list[Any], count: int) -> list[Any] | None:
    """``entries`` in request order, or None when they cannot be matched to ``count`` records."""
    if len(entries) != count:
        return None
    found = [e.get("RowNumber") if isinstance(e, dict) else None for e in entries]
    if all(n is None for n in found):
        return entries
    numbers = [n for n in found if isinstance(n, int) and not isinstance(n, bool)]
    if sorted(numbers) != list(range(1, count + 1)):
        return None  # some without a number, a number twice, or out of range
    ordered: list[Any] = [None] * count
    for number, entry in zip(numbers, entries, strict=True):
        ordered[number - 1] = entry
    return ordered


def classify_bulk(resp: ApiResponse, count: int, *, leads: bool) -> BulkOutcome:
    """Judge a bulk answer to a call of ``count`` records (``leads``: the lead upsert, safe
    to repeat; else the activity call, which is not).

    Redirects, bad keys and paths, and rate limits mean what they mean for CreateCustom (see
    :func:`importer.leadsquared.classify.classify`). A 2xx answer listing exactly ``count``
    entries is read record by record. Otherwise: a refusal of the whole call (400, an MX
    type, Status Error) refuses every record; a 5xx without an MX body is transient; any
    other answer could not be read, and then a lead call is sent again (an upsert), while an
    activity call's records are ``unknown`` (the activities may exist: reconciliation looks).
    """
    judged = classify(resp)
    if judged.kind in (Kind.FATAL, Kind.RATE_LIMITED):
        return BulkOutcome(judged.kind, judged)
    entries = _entries(resp.body) if 200 <= resp.status < 300 else None
    matched = _matched(entries, count) if entries is not None else None
    if matched is not None:
        keys = _LEAD_ID_KEYS if leads else _ACTIVITY_ID_KEYS
        records = tuple(_record(entry, keys) for entry in matched)
        return BulkOutcome(Kind.SUCCESS, Outcome(Kind.SUCCESS, resp.status), records)
    if judged.kind in (Kind.PERMANENT, Kind.TRANSIENT):
        return BulkOutcome(judged.kind, judged)
    if entries is not None:
        what = f"an answer listing {len(entries)} records for {count} sent (or out of order)"
    else:
        what = "an answer without per-record results"
    if leads:
        message = f"HTTP {resp.status} with {what}; the lead upsert is sent again"
        return BulkOutcome(
            Kind.TRANSIENT, Outcome(Kind.TRANSIENT, resp.status, error_message=message)
        )
    message = (
        f"HTTP {resp.status} with {what}; the activities may have been posted, so they are "
        "not sent again"
    )
    return BulkOutcome(Kind.AMBIGUOUS, Outcome(Kind.AMBIGUOUS, resp.status, error_message=message))


def lost_bulk(name: str, detail: str, *, maybe_sent: bool, leads: bool) -> BulkOutcome:
    """A bulk call without an answer: the lead upsert may be sent again; an activity call that
    may have left makes its records ``unknown``."""
    outcome = lost_outcome(name, detail, maybe_sent=maybe_sent)
    if leads and outcome.kind is Kind.AMBIGUOUS:
        outcome = Outcome(
            Kind.TRANSIENT,
            error_type=outcome.error_type,
            error_message=f"{outcome.error_message}; the lead upsert is sent again",
        )
    return BulkOutcome(outcome.kind, outcome)
