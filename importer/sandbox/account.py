"""The emulated LeadSquared account: request validation, the lead store, activities, metadata.

No HTTP here: :class:`SandboxAccount` takes a request's content type and body and returns the
answer's JSON data, or raises :class:`~importer.sandbox.errors.ApiError` (a status and the
error envelope). The server adds transport, keys, the rate limit and faults around it.

Validation of CreateCustom (HTTP 400 for a bad request shape, HTTP 500 with an ``MX...`` type for
application errors, as LeadSquared does): JSON content type and object body; only the root keys
``LeadDetails``, ``Activity`` and ``ValidateDropDownOptions``; ``LeadDetails`` a list of
``{Attribute, Value}`` string pairs naming schema fields, with exactly one ``SearchBy`` entry;
dropdown values, ``MaxLength``, e-mail format and numbers checked against the schema; custom
field sets (``DataType: CustomObject``) sent as ``{"Attribute", "Value": "", "Fields": [...]}``;
mandatory lead fields only on create; ``Activity.ActivityEvent`` a known integer code,
``ActivityDateTime`` exactly ``YYYY-MM-DD HH:MM:SS`` (UTC) and at most 5 minutes in the future,
``Fields`` a list of ``{SchemaName, Value}`` of that activity type, mandatory activity fields
present; an activity custom field set is sent as ``{"Attribute", "Value": "", "Fields":
[{"Attribute", "Value"}]}`` or the same with ``SchemaName`` keys (one key throughout the set),
never as a plain pair, and is recorded as a nested dict in the activity's ``Fields``.
``"ValidateDropDownOptions": true`` at the root skips the dropdown check of activity fields
and of their sets' sub-fields (the fact sheet says so, despite the name). Every check runs
before anything is stored (:meth:`SandboxAccount.parse_create`), and
:meth:`SandboxAccount.create_custom` does the lookup and the insert in one synchronous step, so
a call is atomic; a caller that wants a racy upsert calls :meth:`~SandboxAccount.lookup` and
:meth:`~SandboxAccount.store` apart.

Lead lookup: ``EmailAddress`` (and ``Email`` fields) compare case-insensitively, phone fields
by their digits only, others after trimming; ``SearchBy: ProspectId`` looks a lead up by the
``ProspectID`` entry of ``LeadDetails`` and never creates one.

Bulk endpoints (:meth:`SandboxAccount.bulk_create_or_update`,
:meth:`~SandboxAccount.bulk_add_activities`) take a JSON list of 1 to 25 records (else a 400
for the whole call, nothing stored) and reuse CreateCustom's pieces on each record, in order
and in one synchronous step: a lead is :meth:`~SandboxAccount.parse_lead` then
:meth:`~SandboxAccount.upsert_lead` (its ``SearchBy`` entry optional: EmailAddress, else
Phone), an activity :meth:`~SandboxAccount.parse_activity` then
:meth:`~SandboxAccount.add_activity`. A record that a single call would refuse gets that
call's ExceptionType and ExceptionMessage in its place in the answer, and the others go on:
a partial failure. Two leads of one call with the same search key are upserted in order (the
second updates what the first created); :attr:`BulkResult.same_key` says it happened.

Reads (the answers of the lookup endpoints; they find what the upsert would, compared the
same way): :meth:`SandboxAccount.leads_by_email` (``Leads.GetByEmailaddress``),
:meth:`~SandboxAccount.leads_by_phone` (``RetrieveLeadByPhoneNumber``: digits only, Phone
and Mobile, the lead with the latest activity when several match),
:meth:`~SandboxAccount.leads_get` (``Leads.Get``, ``SqlOperator "="``) and
:meth:`~SandboxAccount.retrieve_activities` (``ProspectActivity.svc/Retrieve``: the lead's
activities, newest first, optionally of one event, paged, each with its note, date-time and
non-empty custom fields in ``Data``). A lead object lists every lead field of the schema
(None when unset) and its ``ProspectID``; a custom field set is a JSON text, as
LeadSquared's answers have them.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import ApiError, invalid_input, mandatory_missing, record_fault_error
from .schema import SandboxSchema, allowed_options, is_custom_field_set, validate_schema_data

__all__ = [
    "BULK_DEFAULT_SEARCH",
    "BULK_MAX_RECORDS",
    "BulkResult",
    "CreateCall",
    "LeadUpsert",
    "SandboxAccount",
]

# LeadSquared rejects activity date-times in the future; allow for clock skew like it does.
FUTURE_TOLERANCE = timedelta(minutes=5)
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
# Deliberately loose: the point is to catch unmapped columns and swapped fields, not RFC 5322.
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")

_PHONE_FIELDS = {"Phone", "Mobile"}
_ROOT_KEYS = {"LeadDetails", "Activity", "ValidateDropDownOptions"}
_ACTIVITY_KEYS = {
    "ActivityEvent",
    "ActivityNote",
    "ActivityDateTime",
    "Fields",
    "ActivityOwnerEmail",
}


BULK_MAX_RECORDS = 25
"""The most records a bulk call takes (leads or activities); more is a 400 for the call."""
BULK_DEFAULT_SEARCH = ("EmailAddress", "Phone")
"""What a bulk lead without a ``SearchBy`` entry is found by: the first of these it has."""


@dataclass
class LeadUpsert:
    """A validated ``LeadDetails`` (CreateCustom's, or one lead of a bulk call), between its
    lookup and its write: attributes, custom field sets, what to find it by."""

    attrs: dict[str, str]
    sets: dict[str, dict[str, str]]
    search_by: str
    prospect_id: str | None


@dataclass
class CreateCall:
    """A validated CreateCustom request, between its lookup and its insert."""

    lead: LeadUpsert
    activity: dict[str, Any]


@dataclass
class BulkResult:
    """What a bulk call did: its answer (``{"Status": "Success", "Response": [...]}``, a
    record per request item, in order) and, for the server's :class:`CallRecord`, the leads
    and activities it wrote, its failed and fault-failed rows (RowNumbers, from 1), and
    whether two of its leads had the same search key."""

    response: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    lead_ids: list[str] = dataclasses.field(default_factory=list)
    activity_ids: list[str] = dataclasses.field(default_factory=list)
    failed_rows: list[int] = dataclasses.field(default_factory=list)
    faulted_rows: list[int] = dataclasses.field(default_factory=list)
    same_key: bool = False

    @property
    def payload(self) -> dict[str, Any]:
        """The JSON answer."""
        return {"Status": "Success", "Response": self.response}

    def answer(self, record: dict[str, Any]) -> None:
        self.response.append(record)

    def error(self, row: int, err: ApiError) -> None:
        """Row ``row`` failed as a single call would have (its status is not shown)."""
        self.failed_rows.append(row)
        self.response.append(
            {"RowNumber": row, "ExceptionType": err.exception_type, "ExceptionMessage": err.message}
        )

    def fault(self, row: int) -> None:
        """Row ``row`` failed by the ``record_error`` fault, unprocessed."""
        self.faulted_rows.append(row)
        self.error(row, record_fault_error())


def _never() -> bool:
    return False


class SandboxAccount:
    """One LeadSquared account: its schema, its leads and their activities.

    ``leads`` (lead id -> attributes, custom field sets as nested dicts) and ``activities``
    (in creation order) are plain data that tests read directly; treat them as read-only
    and use :meth:`reset` to clear them. ``clock`` stamps each activity's ``CreatedAt``.
    """

    def __init__(
        self,
        schema: SandboxSchema | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Normalised (defaults filled in) and checked here too, so a schema built in Python
        # fails at construction with a clear message, not as a bare 500 on the first call.
        given = schema if schema is not None else SandboxSchema.default()
        self.schema = SandboxSchema(
            **validate_schema_data(dataclasses.asdict(given), "sandbox schema")
        )
        self._clock = clock
        self.leads: dict[str, dict[str, Any]] = {}
        self.activities: list[dict[str, Any]] = []
        # attribute -> normalised value -> lead ids, oldest first; built on the first SearchBy
        # (or lookup) of an attribute, then kept up to date by every write.
        self._index: dict[str, dict[str, list[str]]] = {}
        self._searched: set[str] = set()  # the attributes CreateCustom calls searched by
        self._of_lead: dict[str, list[dict[str, Any]]] = {}  # lead id -> its activities
        self._lead_fields = {f["SchemaName"]: f for f in self.schema.lead_fields}
        self._activity_types = {t["ActivityEvent"]: t for t in self.schema.activity_types}

    def reset(self) -> None:
        """Forget leads and activities."""
        self.leads.clear()
        self.activities.clear()
        self._index.clear()
        self._searched.clear()
        self._of_lead.clear()

    def duplicate_leads(self) -> int:
        """How many leads share a SearchBy value with another lead (0 unless an upsert raced).

        Compared per attribute that calls have searched by, normalised as the lookup does.
        """
        duplicated: set[str] = set()
        for attribute in self._searched:
            groups: dict[str, list[str]] = {}
            for lead_id, lead in self.leads.items():
                key = self._normalise(attribute, lead.get(attribute))
                if key:
                    groups.setdefault(key, []).append(lead_id)
            for ids in groups.values():
                if len(ids) > 1:
                    duplicated.update(ids)
        return len(duplicated)

    # ---- metadata ---------------------------------------------------------------------------

    def get_activity_types(self) -> list[dict[str, Any]]:
        """The answer of ``ActivityTypes.Get``."""
        return [
            {
                "ActivityEvent": t["ActivityEvent"],
                "ActivityEventName": t["ActivityEventName"],
                "DisplayName": t["DisplayName"],
            }
            for t in self.schema.activity_types
        ]

    def get_activity_setting(self, code: str) -> dict[str, Any]:
        """The answer of ``GetActivitySetting?code=...``; ``code`` as the query gave it."""
        try:
            event = int(code)
        except ValueError:
            raise invalid_input(f"Invalid activity event code {_short(code)}") from None
        t = self._activity_types.get(event)
        if t is None:
            raise invalid_input(f"Activity event {event} does not exist in this account")
        return {
            "Name": t["ActivityEventName"],
            "DisplayName": t["DisplayName"],
            "Fields": copy.deepcopy(t["Fields"]),
        }

    def get_leads_metadata(self) -> list[dict[str, Any]]:
        """The answer of ``LeadsMetaData.Get``."""
        return copy.deepcopy(self.schema.lead_fields)

    # ---- CreateCustom -----------------------------------------------------------------------

    def create_custom(self, content_type: str, body: bytes) -> dict[str, Any]:
        """Upsert the lead and add the activity; the answer of ``CreateCustom``.

        ``content_type`` is the request's media type without parameters. Raises ApiError, and
        then stores nothing, for a request LeadSquared would refuse.
        """
        call = self.parse_create(content_type, body)
        # Every check is done; from here on nothing fails, so a refused call stores nothing.
        # Lookup and insert in one synchronous step: on the server's event loop no other
        # call can slip between them, so the upsert is atomic.
        return self.store(call, self.lookup(call))

    def parse_create(self, content_type: str, body: bytes) -> CreateCall:
        """Validate a CreateCustom request without looking anything up; raise ApiError."""
        payload = _json_object(content_type, body)
        unknown = sorted(set(payload) - _ROOT_KEYS)
        if unknown:
            raise invalid_input(f"Unknown property {_short(unknown[0])} in the request body", 400)
        skip_dropdowns = _skip_dropdowns(payload)
        lead = self.parse_lead(payload.get("LeadDetails"))
        activity = self.parse_activity(payload.get("Activity"), skip_dropdowns=skip_dropdowns)
        return CreateCall(lead, activity)

    def lookup(self, call: CreateCall) -> str | None:
        """The lead the call updates, or None for a new one (whose mandatory fields are checked)."""
        return self.lookup_lead(call.lead)

    def store(self, call: CreateCall, lead_id: str | None) -> dict[str, Any]:
        """Insert or update the lead, then add the activity; never fails."""
        lead_id, _ = self.write_lead(call.lead, lead_id)
        activity_id = self.add_activity(lead_id, call.activity)
        return {"Status": "Success", "Message": {"Id": activity_id, "RelatedId": lead_id}}

    # ---- the pieces of an upsert, shared by CreateCustom and the bulk endpoints -------------

    def parse_lead(self, details: Any, *, default_search: tuple[str, ...] = ()) -> LeadUpsert:
        """Validate a ``LeadDetails`` list; raise ApiError.

        ``default_search``: the attributes to find the lead by when it has no ``SearchBy``
        entry, the first one with a non-empty value (the bulk upsert's EmailAddress, then
        Phone); empty (CreateCustom) means the entry is required.
        """
        if not isinstance(details, list) or not details:
            raise invalid_input(
                "LeadDetails must be a non-empty list of {Attribute, Value} objects"
            )
        attrs: dict[str, str] = {}
        sets: dict[str, dict[str, str]] = {}
        search_by: list[str] = []
        prospect_id: str | None = None
        for i, item in enumerate(details):
            name, value = _pair(item, f"LeadDetails[{i}]", "Attribute", extra={"Fields"})
            if name == "SearchBy":
                search_by.append(value)
                continue
            if name.lower() == "prospectid":
                prospect_id = value.strip()
                continue
            f = self._lead_fields.get(name)
            if f is None:
                raise invalid_input(f"Unknown lead attribute {_short(name)}{self._hint(name)}")
            if is_custom_field_set(f):
                sets[name] = self._parse_cfs(f, item, f"LeadDetails[{i}] ({name})")
                continue
            if "Fields" in item:
                raise invalid_input(
                    f"Lead attribute {name} is not a custom field set; drop its Fields"
                )
            _check_value(f, value, f"Lead attribute {name}", "Options")
            attrs[name] = value
        if not search_by and default_search:
            key = next((a for a in default_search if attrs.get(a, "").strip()), None)
            if key is None:
                raise invalid_input(
                    "LeadDetails has no SearchBy entry and no value for "
                    f"{' or '.join(default_search)} to find the lead by; add one of them"
                )
            return LeadUpsert(attrs, sets, key, prospect_id)
        if len(search_by) != 1:
            exactly = "at most" if default_search else "exactly"
            raise invalid_input(
                f"LeadDetails must have {exactly} one SearchBy entry, found {len(search_by)}"
            )
        key = search_by[0]
        if key.lower() == "prospectid":
            if not prospect_id:
                raise invalid_input("SearchBy ProspectId needs a ProspectID entry with a lead id")
            return LeadUpsert(attrs, sets, key, prospect_id)
        if not attrs.get(key, "").strip():
            raise invalid_input(
                f"SearchBy names {_short(key)}, which has no non-empty value in LeadDetails"
            )
        return LeadUpsert(attrs, sets, key, prospect_id)

    def search_key(self, lead: LeadUpsert) -> tuple[str, str]:
        """What the lookup compares: the attribute and its normalised value (two leads with
        the same key are the same lead)."""
        if lead.search_by.lower() == "prospectid":
            return "ProspectId", lead.prospect_id or ""
        return lead.search_by, self._normalise(lead.search_by, lead.attrs[lead.search_by])

    def lookup_lead(self, lead: LeadUpsert) -> str | None:
        """The lead to update, or None for a new one (whose mandatory fields are checked
        here); raise ApiError for a ``SearchBy ProspectId`` that finds none."""
        if lead.search_by.lower() == "prospectid":
            if not lead.prospect_id or lead.prospect_id not in self.leads:
                raise invalid_input(
                    f"SearchBy ProspectId: no lead with ProspectID {_short(lead.prospect_id or '')}"
                )
            return lead.prospect_id
        self._searched.add(lead.search_by)
        lead_id = self._find_lead(lead.search_by, lead.attrs[lead.search_by])
        if lead_id is None:
            self._check_mandatory_lead_fields(lead.attrs, lead.sets)
        return lead_id

    def write_lead(self, lead: LeadUpsert, lead_id: str | None) -> tuple[str, bool]:
        """Update lead ``lead_id``, or create one (None, or a lead gone since the lookup);
        return its id and whether it was created. Never fails."""
        created = lead_id is None or lead_id not in self.leads
        if lead_id is None or created:
            lead_id = str(uuid.uuid4())
            self.leads[lead_id] = {"ProspectID": lead_id}
        self._write_lead(lead_id, lead.attrs, lead.sets)
        return lead_id, created

    def upsert_lead(self, lead: LeadUpsert) -> tuple[str, bool]:
        """Look the lead up and write it in one synchronous step (atomic on the event loop);
        return its id and whether it was created. Raises ApiError as :meth:`lookup_lead`."""
        return self.write_lead(lead, self.lookup_lead(lead))

    def add_activity(self, lead_id: str, activity: dict[str, Any]) -> str:
        """Store a validated activity (:meth:`parse_activity`) on a lead; return its id."""
        activity_id = str(uuid.uuid4())
        stored = dict(activity, Id=activity_id, LeadId=lead_id, CreatedAt=self._clock())
        self.activities.append(stored)
        self._of_lead.setdefault(lead_id, []).append(stored)
        return activity_id

    # ---- bulk endpoints ---------------------------------------------------------------------

    def bulk_create_or_update(
        self,
        content_type: str,
        body: bytes,
        *,
        record_fault: Callable[[], bool] = _never,
    ) -> BulkResult:
        """``Lead/Bulk/CreateOrUpdate``: upsert each lead of the list, in order.

        Each lead is a ``LeadDetails`` list, checked and upserted as CreateCustom's; without
        a ``SearchBy`` entry it is found by EmailAddress, else by Phone. A lead that fails
        answers a record error and leaves the others alone (a partial failure). A bad body
        (not JSON, not a list, empty, more than :data:`BULK_MAX_RECORDS`) raises ApiError
        (400) and stores nothing. ``record_fault()`` is asked once per record, in order: True
        fails it with :data:`RECORD_FAULT_TYPE` (the ``record_error`` fault) unprocessed.
        """
        records = _json_list(content_type, body, "leads")
        result = BulkResult()
        seen: set[tuple[str, str]] = set()
        for row, details in enumerate(records, 1):
            faulted = record_fault()  # one draw per record, whatever the record holds
            try:
                lead = self.parse_lead(details, default_search=BULK_DEFAULT_SEARCH)
            except ApiError as err:
                if faulted:
                    result.fault(row)
                else:
                    result.error(row, err)
                continue
            # What the client sent counts, even for a record that fails later.
            key = self.search_key(lead)
            result.same_key = result.same_key or key in seen
            seen.add(key)
            if faulted:
                result.fault(row)
                continue
            try:
                lead_id, created = self.upsert_lead(lead)
            except ApiError as err:
                result.error(row, err)
                continue
            result.lead_ids.append(lead_id)
            result.answer(
                {
                    "RowNumber": row,
                    "LeadId": lead_id,
                    "LeadCreated": created,
                    "LeadUpdated": not created,
                }
            )
        return result

    def bulk_add_activities(
        self,
        search_by: str | None,
        content_type: str,
        body: bytes,
        *,
        record_fault: Callable[[], bool] = _never,
    ) -> BulkResult:
        """``Bulk/CustomActivity/Add/ByLeadField?searchBy=...``: add each activity of the
        list to the lead whose ``search_by`` field is its ``SearchByValue``, in order.

        The lead is found as the upsert finds it (an e-mail in any case, a phone by its
        digits); none is a record error ("Lead not found ..."), as is an activity that
        CreateCustom's ``Activity`` check refuses. A missing or unknown ``search_by`` or a bad
        body raises ApiError and stores nothing. ``record_fault`` as for
        :meth:`bulk_create_or_update`.
        """
        field = self._search_field(search_by)
        records = _json_list(content_type, body, "activities")
        result = BulkResult()
        for row, record in enumerate(records, 1):
            if record_fault():
                result.fault(row)
                continue
            try:
                lead_id, activity = self._parse_bulk_activity(field, record)
            except ApiError as err:
                result.error(row, err)
                continue
            activity_id = self.add_activity(lead_id, activity)
            result.activity_ids.append(activity_id)
            result.answer({"RowNumber": row, "ProspectActivityId": activity_id, "LeadId": lead_id})
        return result

    def _search_field(self, search_by: str | None) -> str:
        """The lead field a ByLeadField call names (any case), or ApiError."""
        if search_by is None or not search_by.strip():
            raise invalid_input(
                "The searchBy parameter is required (e.g. searchBy=EmailAddress)", 400
            )
        wanted = search_by.strip()
        if wanted.lower() == "prospectid":
            return "ProspectId"
        for name, f in self._lead_fields.items():
            if name.lower() == wanted.lower() and not is_custom_field_set(f):
                return name
        raise invalid_input(f"Invalid searchBy {_short(search_by)}: not a lead field")

    def _parse_bulk_activity(self, field: str, record: Any) -> tuple[str, dict[str, Any]]:
        """The lead and the validated activity of one ByLeadField record, or ApiError."""
        if not isinstance(record, dict):
            raise invalid_input("Each activity must be an object with SearchByValue")
        value = record.get("SearchByValue")
        if not isinstance(value, str) or not value.strip():
            raise invalid_input("SearchByValue must be a non-empty string")
        if field == "ProspectId":
            lead_id: str | None = value.strip() if value.strip() in self.leads else None
        else:
            lead_id = self._find_lead(field, value)
        if lead_id is None:
            raise invalid_input(f"Lead not found: no lead with {field} {_short(value)}")
        skip_dropdowns = _skip_dropdowns(record)
        activity = {
            k: v for k, v in record.items() if k not in ("SearchByValue", "ValidateDropDownOptions")
        }
        return lead_id, self.parse_activity(activity, skip_dropdowns=skip_dropdowns)

    def _parse_cfs(
        self,
        f: dict[str, Any],
        item: dict[str, Any],
        where: str,
        *,
        name_key: str = "Attribute",
        options_key: str = "Options",
        skip_dropdown: bool = False,
    ) -> dict[str, str]:
        """Validate a custom field set entry; its sub-fields are named by ``name_key`` too."""
        if item.get("Value", "") != "":
            raise invalid_input(f'{where} is a custom field set: send Value "" and its Fields')
        fields = item.get("Fields")
        if not isinstance(fields, list):
            raise invalid_input(f"{where} is a custom field set: Fields must be a list")
        subs = {s["SchemaName"]: s for s in f.get("Fields", [])}
        other_key = "SchemaName" if name_key == "Attribute" else "Attribute"
        out: dict[str, str] = {}
        for j, sub in enumerate(fields):
            sub_where = f"{where}.Fields[{j}]"
            if isinstance(sub, dict) and name_key not in sub and other_key in sub:
                raise invalid_input(
                    f"{sub_where}: name the field with {name_key}, as the set itself is, "
                    f"not {other_key}"
                )
            name, value = _pair(sub, sub_where, name_key)
            sf = subs.get(name)
            if sf is None:
                raise invalid_input(
                    f"Unknown field {_short(name)} in custom field set {f['SchemaName']}"
                    f"{self._hint(name, subs)}"
                )
            _check_value(
                sf,
                value,
                f"Field {f['SchemaName']}.{name}",
                options_key,
                skip_dropdown=skip_dropdown,
            )
            out[name] = value
        return out

    def parse_activity(self, activity: Any, *, skip_dropdowns: bool) -> dict[str, Any]:
        """Validate an ``Activity`` object (CreateCustom's, or a bulk record's); raise ApiError."""
        if not isinstance(activity, dict):
            raise invalid_input("Activity must be an object with an ActivityEvent")
        unknown = sorted(set(activity) - _ACTIVITY_KEYS)
        if unknown:
            raise invalid_input(f"Unknown Activity property {_short(unknown[0])}")
        code = activity.get("ActivityEvent")
        if not isinstance(code, int) or isinstance(code, bool):
            raise invalid_input("Activity.ActivityEvent must be an integer activity event code")
        t = self._activity_types.get(code)
        if t is None:
            raise invalid_input(f"Activity event {code} does not exist in this account")
        note = activity.get("ActivityNote", "")
        if not isinstance(note, str):
            raise invalid_input("Activity.ActivityNote must be a string")
        when = activity.get("ActivityDateTime")
        if when is None or when == "":
            when = datetime.now(UTC).strftime(DATETIME_FORMAT)
        else:
            when = _check_datetime(when)
        fields = activity.get("Fields", [])
        if not isinstance(fields, list):
            raise invalid_input("Activity.Fields must be a list of {SchemaName, Value} objects")
        known = {f["SchemaName"]: f for f in t["Fields"]}
        values: dict[str, str | dict[str, str]] = {}
        for i, item in enumerate(fields):
            where = f"Activity.Fields[{i}]"
            # A custom field set may be named by Attribute (the fact sheet's form) or by
            # SchemaName (the plain fields' form); plain fields only by SchemaName.
            name_key = (
                "Attribute"
                if isinstance(item, dict) and "Attribute" in item and "SchemaName" not in item
                else "SchemaName"
            )
            name, value = _pair(item, where, name_key, extra={"Fields"})
            f = known.get(name)
            if f is None:
                raise invalid_input(
                    f"Field {_short(name)} does not belong to activity event {code}"
                    f"{self._hint(name, known)}"
                )
            if is_custom_field_set(f):
                if "Fields" not in item:
                    raise invalid_input(
                        f"{where} ({name}) is a custom field set of activity event {code}: "
                        f'send {{"{name_key}": "{name}", "Value": "", "Fields": [...]}}'
                    )
                values[name] = self._parse_cfs(
                    f,
                    item,
                    f"{where} ({name})",
                    name_key=name_key,
                    options_key="OptionSet",
                    skip_dropdown=skip_dropdowns,
                )
                continue
            if "Fields" in item:
                raise invalid_input(
                    f"Activity field {name} is not a custom field set; drop its Fields"
                )
            if name_key != "SchemaName":
                raise invalid_input(
                    f"{where} ({name}): name a plain activity field with SchemaName, not Attribute"
                )
            _check_value(
                f, value, f"Activity field {name}", "OptionSet", skip_dropdown=skip_dropdowns
            )
            values[name] = value
        _check_mandatory_activity_fields(code, known, values)
        return {
            "ActivityEvent": code,
            "ActivityNote": note,
            "ActivityDateTime": when,
            "Fields": values,
        }

    def _hint(self, name: str, known: dict[str, Any] | None = None) -> str:
        names = self._lead_fields if known is None else known
        for candidate in names:
            if candidate.lower() == name.lower():
                return f" (did you mean {candidate}?)"
        return ""

    def _check_mandatory_lead_fields(
        self, attrs: dict[str, str], sets: dict[str, dict[str, str]]
    ) -> None:
        for name, f in self._lead_fields.items():
            if is_custom_field_set(f):
                if name in sets:
                    for sub in f.get("Fields", []):
                        if sub.get("IsMandatory") and not sets[name].get(sub["SchemaName"], ""):
                            raise mandatory_missing(
                                f"Mandatory field {name}.{sub['SchemaName']} is missing"
                            )
                continue
            if f.get("IsMandatory") and not attrs.get(name, "").strip():
                raise mandatory_missing(f"Mandatory lead field {name} is missing for a new lead")

    # ---- lead lookup ------------------------------------------------------------------------

    def _normalise(self, attribute: str, value: Any) -> str:
        if not isinstance(value, str):
            return ""
        f = self._lead_fields.get(attribute, {})
        data_type = str(f.get("DataType", "")).lower()
        if data_type == "email" or attribute == "EmailAddress":
            return value.strip().lower()
        if data_type == "phone" or attribute in _PHONE_FIELDS:
            return "".join(ch for ch in value if ch.isdigit())
        return value.strip()

    def _index_for(self, attribute: str) -> dict[str, list[str]]:
        index = self._index.get(attribute)
        if index is None:
            index = {}
            for lead_id, lead in self.leads.items():  # in creation order: oldest first
                key = self._normalise(attribute, lead.get(attribute))
                if key:
                    index.setdefault(key, []).append(lead_id)
            self._index[attribute] = index
        return index

    def _matching(self, attribute: str, value: str) -> list[str]:
        """Every lead whose ``attribute`` compares equal to ``value``, oldest first."""
        key = self._normalise(attribute, value)
        if not key:
            return []
        return [i for i in self._index_for(attribute).get(key, ()) if i in self.leads]

    def _find_lead(self, attribute: str, value: str) -> str | None:
        found = self._matching(attribute, value)
        return found[0] if found else None  # the oldest lead wins, like a lookup would

    def _write_lead(
        self, lead_id: str, attrs: dict[str, str], sets: dict[str, dict[str, str]]
    ) -> None:
        lead = self.leads[lead_id]
        for attribute, index in self._index.items():
            if attribute in attrs:
                old = self._normalise(attribute, lead.get(attribute))
                ids = index.get(old) if old else None
                if ids is not None and lead_id in ids:
                    ids.remove(lead_id)
                    if not ids:
                        del index[old]
        lead.update(attrs)
        for name, values in sets.items():
            current = lead.get(name)
            if not isinstance(current, dict):
                current = lead[name] = {}
            current.update(values)
        for attribute, index in self._index.items():
            if attribute in attrs:
                new = self._normalise(attribute, attrs[attribute])
                if new and lead_id not in index.setdefault(new, []):
                    index[new].append(lead_id)

    # ---- reads: the lookup endpoints --------------------------------------------------------

    def _lead_answer(self, lead_id: str, columns: list[str] | None = None) -> dict[str, Any]:
        """A lead as the read endpoints describe it: ``ProspectID`` and every lead field of
        the schema (None when unset; a custom field set as a JSON text), or only
        ``columns``."""
        lead = self.leads[lead_id]
        names = ["ProspectID", *self._lead_fields] if columns is None else columns
        answer: dict[str, Any] = {}
        for name in names:
            value = lead_id if name.lower() == "prospectid" else lead.get(name)
            if isinstance(value, dict):
                value = json.dumps(value, ensure_ascii=False)
            answer[name] = value
        return answer

    def leads_by_email(self, email: str | None) -> list[dict[str, Any]]:
        """The answer of ``Leads.GetByEmailaddress?emailaddress=...``: the leads with that
        address (case-insensitive, as the upsert compares), ``[]`` for none."""
        if email is None:
            raise invalid_input("The emailaddress parameter is required", 400)
        return [self._lead_answer(i) for i in self._matching("EmailAddress", email)]

    def leads_by_phone(self, phone: str | None) -> list[dict[str, Any]]:
        """The answer of ``RetrieveLeadByPhoneNumber?phone=...``: the lead whose Phone or
        Mobile has these digits (the one with the latest activity when several do), ``[]``
        for none. The number must be digits only, as the docs ask (no spaces, hyphens or
        ``+``); the sandbox compares all of them (LeadSquared also matches a number given
        without its country code)."""
        if phone is None:
            raise invalid_input("The phone parameter is required", 400)
        if not phone.isdigit() or not phone.isascii():
            raise invalid_input(
                f"Invalid phone number {_short(phone)}: pass digits only, without spaces, "
                "hyphens or other characters"
            )
        found = dict.fromkeys(
            lead_id for name in sorted(_PHONE_FIELDS) for lead_id in self._matching(name, phone)
        )
        if not found:
            return []
        order = {lead_id: n for n, lead_id in enumerate(self.leads)}

        def latest(lead_id: str) -> tuple[float, int]:
            mine = self._of_lead.get(lead_id, ())
            return (max((a["CreatedAt"] for a in mine), default=-math.inf), order[lead_id])

        return [self._lead_answer(max(found, key=latest))]

    def leads_get(self, content_type: str, body: bytes) -> list[dict[str, Any]]:
        """The answer of ``Leads.Get``: the leads whose ``LookupName`` field equals
        ``LookupValue`` (compared as the upsert compares), oldest first, one page of them.
        Only ``SqlOperator "="`` is implemented; ``Columns.Include_CSV`` picks the fields of
        each lead; ``Paging`` is ``PageIndex`` (from 1) and ``PageSize`` (default 25)."""
        payload = _json_object(content_type, body)
        parameter = _part(payload, "Parameter")
        name, value = parameter.get("LookupName"), parameter.get("LookupValue")
        if not isinstance(name, str) or not isinstance(value, str):
            raise invalid_input("Parameter.LookupName and LookupValue must be strings")
        operator = parameter.get("SqlOperator", "=")
        if operator != "=":
            raise invalid_input(
                f"SqlOperator {_short(str(operator))} is not implemented by the sandbox; use ="
            )
        if name.lower() == "prospectid":
            ids = [value.strip()] if value.strip() in self.leads else []
        else:
            f = self._lead_fields.get(name)
            if f is None or is_custom_field_set(f):
                raise invalid_input(f"Invalid LookupName {_short(name)}{self._hint(name)}")
            ids = self._matching(name, value)
        columns = None
        wanted = _part(payload, "Columns").get("Include_CSV")
        if isinstance(wanted, str) and wanted.strip():
            columns = [c.strip() for c in wanted.split(",") if c.strip()]
        paging = _part(payload, "Paging")
        index = _whole(paging.get("PageIndex", 1), "Paging.PageIndex", least=1)
        size = _whole(paging.get("PageSize", 25), "Paging.PageSize", least=1)
        page = ids[(index - 1) * size : index * size]
        return [self._lead_answer(i, columns) for i in page]

    def retrieve_activities(
        self,
        lead_id: str | None,
        content_type: str,
        body: bytes,
        *,
        visible_until: float = math.inf,
    ) -> dict[str, Any]:
        """The answer of ``ProspectActivity.svc/Retrieve?leadId=...``: ``{"RecordCount",
        "ProspectActivities"}``, the lead's activities newest first, of
        ``Parameter.ActivityEvent`` when given, created at or before ``visible_until`` (the
        server's ``read_lag``).

        ``Paging``: ``RowCount`` per page (default 25) and ``Offset``, which the docs call
        "the page number": read as a page number from 1, ``0`` also meaning the first page
        (the docs' examples use both for it). ``RecordCount`` counts every matching activity.
        """
        if not lead_id:
            raise invalid_input("The leadId parameter is required", 400)
        if lead_id not in self.leads:
            raise invalid_input(f"No lead with ProspectID {_short(lead_id)}")
        # An empty body asks for every activity, as the docs say.
        payload = _json_object(content_type, body) if body.strip() else {}
        event = _part(payload, "Parameter").get("ActivityEvent")
        if event is not None and (not isinstance(event, int) or isinstance(event, bool)):
            raise invalid_input("Parameter.ActivityEvent must be an integer activity event code")
        paging = _part(payload, "Paging")
        page = max(1, _whole(paging.get("Offset", 0), "Paging.Offset", least=0))
        rows = _whole(paging.get("RowCount", 25), "Paging.RowCount", least=1)
        mine = [
            a
            for a in reversed(self._of_lead.get(lead_id, ()))
            if a["CreatedAt"] <= visible_until and (event is None or a["ActivityEvent"] == event)
        ]
        shown = mine[(page - 1) * rows : page * rows]
        return {
            "RecordCount": len(mine),
            "ProspectActivities": [self._activity_answer(a) for a in shown],
        }

    def _activity_answer(self, activity: dict[str, Any]) -> dict[str, Any]:
        """One activity as Retrieve lists it: what every activity has at the top, its own
        properties in ``Data`` as Key/Value pairs (LeadSquared's example and the clients in
        the wild read it so): the note, the date-time and the non-empty custom fields (a set
        as a JSON text). ``CreatedOn`` is the activity's date-time, as LeadSquared's timeline
        shows it."""
        data = [
            {"Key": "ActivityEvent_Note", "Value": activity["ActivityNote"]},
            {"Key": "ActivityDateTime", "Value": activity["ActivityDateTime"]},
        ]
        for name, value in activity["Fields"].items():
            if isinstance(value, dict):
                if any(v for v in value.values()):
                    data.append({"Key": name, "Value": json.dumps(value, ensure_ascii=False)})
            elif value:
                data.append({"Key": name, "Value": value})
        event = activity["ActivityEvent"]
        return {
            "Id": activity["Id"],
            "EventCode": event,
            "EventName": self._activity_types[event]["DisplayName"],
            "ActivityScore": 0,
            "CreatedOn": activity["ActivityDateTime"],
            "ActivityType": 2,
            "IsEmailType": False,
            "Data": data,
        }


def _short(value: str, limit: int = 60) -> str:
    """Quote a user value for an error message without flooding it."""
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def _json_body(content_type: str, body: bytes) -> Any:
    """A request body parsed as JSON (400 for another content type or text that is not JSON)."""
    if content_type.lower() != "application/json":
        raise invalid_input(
            f"Content-Type must be application/json, not {_short(content_type)}", 400
        )
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise invalid_input("Request body is not valid JSON", 400) from None


def _json_object(content_type: str, body: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object (400 otherwise, like CreateCustom's)."""
    payload = _json_body(content_type, body)
    if not isinstance(payload, dict):
        raise invalid_input("Request body must be a JSON object", 400)
    return payload


def _json_list(content_type: str, body: bytes, what: str) -> list[Any]:
    """A bulk call's body: a JSON list of 1 to BULK_MAX_RECORDS items (400 otherwise)."""
    payload = _json_body(content_type, body)
    if not isinstance(payload, list):
        raise invalid_input(f"Request body must be a JSON list of {what}", 400)
    if not payload:
        raise invalid_input(f"Request body has no {what}: send 1 to {BULK_MAX_RECORDS}", 400)
    if len(payload) > BULK_MAX_RECORDS:
        raise invalid_input(
            f"Request body has {len(payload)} {what}, more than {BULK_MAX_RECORDS} a call", 400
        )
    return payload


def _skip_dropdowns(payload: dict[str, Any]) -> bool:
    """``ValidateDropDownOptions`` of a request (CreateCustom's root, or a bulk activity)."""
    skip = payload.get("ValidateDropDownOptions", False)
    if not isinstance(skip, bool):
        raise invalid_input("ValidateDropDownOptions must be true or false")
    return skip


def _part(payload: dict[str, Any], name: str) -> dict[str, Any]:
    """An optional object of a request body ({} when absent)."""
    part = payload.get(name)
    if part is None:
        return {}
    if not isinstance(part, dict):
        raise invalid_input(f"{name} must be an object")
    return part


def _whole(value: Any, where: str, *, least: int) -> int:
    """A paging number, given as a JSON number or a string of digits (the docs use both)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise invalid_input(f"{where} must be a whole number >= {least}, not {_short(str(value))}")
    return value


def _check_mandatory_activity_fields(
    code: int, known: dict[str, dict[str, Any]], values: dict[str, str | dict[str, str]]
) -> None:
    """A set counts as sent if any of its sub-fields has a value; a sent set needs its
    mandatory sub-fields. Every activity is new, so unlike lead fields this applies to
    every call."""
    for name, f in known.items():
        value = values.get(name, "")
        if isinstance(value, dict):
            for sub in f.get("Fields", []):
                if sub.get("IsMandatory") and not value.get(sub["SchemaName"], "").strip():
                    raise mandatory_missing(
                        f"Mandatory field {name}.{sub['SchemaName']} of activity event "
                        f"{code} is missing"
                    )
            sent = any(v.strip() for v in value.values())
        else:
            sent = bool(value.strip())
        if f.get("IsMandatory") and not sent:
            raise mandatory_missing(f"Mandatory field {name} of activity event {code} is missing")


def _check_datetime(when: Any) -> str:
    if not isinstance(when, str) or not _DATETIME_RE.fullmatch(when):
        raise invalid_input(
            f"Activity.ActivityDateTime {_short(str(when))} must be yyyy-MM-dd HH:mm:ss (UTC)"
        )
    try:
        parsed = datetime.strptime(when, DATETIME_FORMAT)
    except ValueError:
        raise invalid_input(
            f"Activity.ActivityDateTime {_short(when)} is not a real date"
        ) from None
    now = datetime.now(UTC).replace(tzinfo=None)
    if parsed > now + FUTURE_TOLERANCE:
        raise invalid_input(
            f"Activity.ActivityDateTime {when} is in the future (UTC now is "
            f"{now.strftime(DATETIME_FORMAT)})"
        )
    return when


def _pair(
    item: Any, where: str, name_key: str, extra: set[str] | frozenset[str] = frozenset()
) -> tuple[str, str]:
    """Validate a ``{name_key, Value}`` object with string members."""
    if not isinstance(item, dict):
        raise invalid_input(f"{where} must be an object with {name_key} and Value")
    name = item.get(name_key)
    value = item.get("Value")
    if not isinstance(name, str) or not name:
        raise invalid_input(f"{where} needs a non-empty string {name_key}")
    if not isinstance(value, str):
        raise invalid_input(f"{where} ({name}): Value must be a string")
    unknown = sorted(set(item) - {name_key, "Value"} - set(extra))
    if unknown:
        raise invalid_input(f"{where} ({name}): unknown property {_short(unknown[0])}")
    return name, value


def _check_value(
    f: dict[str, Any], value: str, where: str, options_key: str, *, skip_dropdown: bool = False
) -> None:
    """Check one value against its field's type, length and options. Empty is allowed."""
    if value == "":
        return
    max_length = str(f.get("MaxLength") or "").strip()
    if max_length.isdigit() and int(max_length) > 0 and len(value) > int(max_length):
        raise invalid_input(
            f"{where}: value is {len(value)} characters, more than its MaxLength {max_length}"
        )
    data_type = str(f.get("DataType", "")).lower()
    if (data_type == "email" or f.get("SchemaName") == "EmailAddress") and not (
        _EMAIL_RE.fullmatch(value.strip())
    ):
        raise invalid_input(f"{where}: {_short(value)} is not a valid email address")
    if data_type in ("number", "decimal", "integer"):
        try:
            ok = math.isfinite(float(value))
        except ValueError:
            ok = False
        if not ok:
            raise invalid_input(f"{where}: {_short(value)} is not a number")
    allowed = allowed_options(f, options_key)
    if allowed is not None and not skip_dropdown and value not in allowed:
        shown = ", ".join(dict.fromkeys(allowed)) or "none"
        raise invalid_input(f"{where}: {_short(value)} is not one of its options ({shown})")
