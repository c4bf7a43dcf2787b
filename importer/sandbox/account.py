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

from .errors import invalid_input, mandatory_missing
from .schema import SandboxSchema, allowed_options, is_custom_field_set, validate_schema_data

__all__ = ["CreateCall", "SandboxAccount"]

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


@dataclass
class CreateCall:
    """A validated CreateCustom request, between its lookup and its insert."""

    attrs: dict[str, str]
    sets: dict[str, dict[str, str]]
    search_by: str
    prospect_id: str | None
    activity: dict[str, Any]


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
        skip_dropdowns = payload.get("ValidateDropDownOptions", False)
        if not isinstance(skip_dropdowns, bool):
            raise invalid_input("ValidateDropDownOptions must be true or false")

        attrs, sets, search_by, prospect_id = self._parse_lead_details(payload.get("LeadDetails"))
        activity = self._parse_activity(payload.get("Activity"), skip_dropdowns=skip_dropdowns)
        return CreateCall(attrs, sets, search_by, prospect_id, activity)

    def lookup(self, call: CreateCall) -> str | None:
        """The lead the call updates, or None for a new one (whose mandatory fields are checked)."""
        if call.search_by.lower() == "prospectid":
            if not call.prospect_id or call.prospect_id not in self.leads:
                raise invalid_input(
                    f"SearchBy ProspectId: no lead with ProspectID {_short(call.prospect_id or '')}"
                )
            return call.prospect_id
        self._searched.add(call.search_by)
        lead_id = self._find_lead(call.search_by, call.attrs[call.search_by])
        if lead_id is None:
            self._check_mandatory_lead_fields(call.attrs, call.sets)
        return lead_id

    def store(self, call: CreateCall, lead_id: str | None) -> dict[str, Any]:
        """Insert or update the lead, then add the activity; never fails."""
        if lead_id is None or lead_id not in self.leads:
            lead_id = str(uuid.uuid4())
            self.leads[lead_id] = {"ProspectID": lead_id}
        self._write_lead(lead_id, call.attrs, call.sets)

        activity_id = str(uuid.uuid4())
        activity = dict(call.activity, Id=activity_id, LeadId=lead_id, CreatedAt=self._clock())
        self.activities.append(activity)
        self._of_lead.setdefault(lead_id, []).append(activity)
        return {"Status": "Success", "Message": {"Id": activity_id, "RelatedId": lead_id}}

    def _parse_lead_details(
        self, details: Any
    ) -> tuple[dict[str, str], dict[str, dict[str, str]], str, str | None]:
        """Validate LeadDetails; return attributes, custom field sets, SearchBy, ProspectID."""
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
        if len(search_by) != 1:
            raise invalid_input(
                f"LeadDetails must have exactly one SearchBy entry, found {len(search_by)}"
            )
        key = search_by[0]
        if key.lower() == "prospectid":
            if not prospect_id:
                raise invalid_input("SearchBy ProspectId needs a ProspectID entry with a lead id")
            return attrs, sets, key, prospect_id
        if not attrs.get(key, "").strip():
            raise invalid_input(
                f"SearchBy names {_short(key)}, which has no non-empty value in LeadDetails"
            )
        return attrs, sets, key, prospect_id

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

    def _parse_activity(self, activity: Any, *, skip_dropdowns: bool) -> dict[str, Any]:
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


def _json_object(content_type: str, body: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object (400 otherwise, like CreateCustom's)."""
    if content_type.lower() != "application/json":
        raise invalid_input(
            f"Content-Type must be application/json, not {_short(content_type)}", 400
        )
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise invalid_input("Request body is not valid JSON", 400) from None
    if not isinstance(payload, dict):
        raise invalid_input("Request body must be a JSON object", 400)
    return payload


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
