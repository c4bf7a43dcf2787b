"""A local LeadSquared sandbox: an aiohttp server on loopback that behaves like the real API.

Why: users try a mapping against it before touching a real account, and our end-to-end tests
and benchmarks run against it. So it is strict where LeadSquared is strict (authentication,
the rolling-window rate limit, input validation) and it records every call so a test can
assert what the client did, e.g. that it never exceeded the rate limit.

Endpoints (paths match case-insensitively, like IIS/WCF):

- ``POST /v2/ProspectActivity.svc/CreateCustom`` - upsert a lead by its ``SearchBy`` attribute,
  then add one activity to it. 200 ``{"Status": "Success", "Message": {"Id": <activity id>,
  "RelatedId": <lead id>}}``.
- ``GET /v2/ProspectActivity.svc/ActivityTypes.Get`` - ``[{ActivityEvent, ActivityEventName,
  DisplayName}]``.
- ``GET /v2/ProspectActivity.svc/CustomActivity/GetActivitySetting?code=N`` - ``{Name,
  DisplayName, Fields}``; an unknown code is a 500 ``MXInvalidInputException``.
- ``GET /v2/LeadManagement.svc/LeadsMetaData.Get`` - the lead fields of the schema.
- ``GET /_sandbox/state`` - JSON snapshot of calls, leads and activities (no auth, not recorded).
- ``POST /_sandbox/reset`` - forget leads, activities and calls (no auth, not recorded).
- Anything else: 404 with a plain-text body, like a real web server; a known ``/v2/`` path with
  the wrong method: 405, plain text.

Each ``/v2/`` request goes through, in order: the uplink half of the simulated latency; arrival
(``clock()`` is read and a :class:`CallRecord` appended to :attr:`Sandbox.calls`); routing
(404/405); authentication (401 ``MXUnAuthorizedAccessException``; keys come from the
``x-LSQ-AccessKey``/``x-LSQ-SecretKey`` headers, or, when neither header is sent, from the
``accessKey``/``secretKey`` query parameters); the rate limiter (429
``MXAPIRateLimitExceededException``, "API calls exceeded the limit of R in P second(s)");
the endpoint itself; the downlink half of the latency. Injected faults (:class:`FaultConfig`,
CreateCustom only) are drawn at arrival: network faults (``drop_before``, ``proxy_502``)
answer right after routing, server faults (500s, ``error_200``, throttling) right after the
real limiter admits the call, and ``drop_after`` closes the connection once the call has been
processed. Each :class:`CallRecord` names its fault and the activity it created.

Keys are never echoed in a response, a log line or a call record (records keep the path
without its query string, and the aiohttp access log is off).

Rate limit: a rolling window measured at the server. A call is refused if ``rate`` or more
counted arrivals lie in ``(now - per, now]``. Authenticated calls to known endpoints are
*metered*; with ``count_rejected=True`` (the default, like a real counter) refused calls count
too, so a client that keeps hammering stays locked out. :meth:`Sandbox.max_in_window` reports
the most metered arrivals (accepted or refused) in any window, so ``<= rate`` means the client
never overran the limit.

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
before anything is stored, and the lookup and insert run without an ``await`` between them,
so a call is atomic (unless ``FaultConfig.nonatomic_upsert`` puts a pause there, to reproduce
a racy upsert).

Lead lookup: ``EmailAddress`` (and ``Email`` fields) compare case-insensitively, phone fields
by their digits only, others after trimming; ``SearchBy: ProspectId`` looks a lead up by the
``ProspectID`` entry of ``LeadDetails`` and never creates one.

Usage from a test or a benchmark (sync code)::

    from importer.sandbox import SandboxThread
    with SandboxThread(rate=5, per=1.0) as sandbox:
        run_import("leads.csv", "mapping.yaml", host=sandbox.base_url, rate=5, per=1.0,
                   credentials=Credentials("sandbox-access-key", "sandbox-secret-key"))
    assert sandbox.max_in_window() <= 5

With faults, e.g. for a fault test (the same seed and call order give the same faults)::

    faults = FaultConfig.from_spec("drop_after=0.05,error_500_plain=0.1,seed=7")
    with SandboxThread(rate=20, per=0.2, faults=faults) as sandbox: ...
    [c.fault for c in sandbox.calls]        # which call got which fault
    sandbox.duplicate_leads()               # leads a racy upsert doubled

From async code: ``async with Sandbox() as sandbox: ...``. From the shell:
``lsq-import sandbox`` (see :func:`serve`), then point the importer at
``http://127.0.0.1:8787`` with the default keys ``sandbox-access-key``/``sandbox-secret-key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import hmac
import ipaddress
import json
import logging
import math
import random
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml
from aiohttp import web

from ..exceptions import ConfigError

__all__ = [
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_SECRET_KEY",
    "FAULTS",
    "CallRecord",
    "FaultConfig",
    "Sandbox",
    "SandboxSchema",
    "SandboxThread",
    "serve",
]

log = logging.getLogger(__name__)

DEFAULT_ACCESS_KEY = "sandbox-access-key"
DEFAULT_SECRET_KEY = "sandbox-secret-key"

# LeadSquared rejects activity date-times in the future; allow for clock skew like it does.
FUTURE_TOLERANCE = timedelta(minutes=5)
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
# Deliberately loose: the point is to catch unmapped columns and swapped fields, not RFC 5322.
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")

_DROPDOWN_TYPES = {"select", "dropdown", "searchabledropdown", "multiselect"}
_PHONE_FIELDS = {"Phone", "Mobile"}
_ROOT_KEYS = {"LeadDetails", "Activity", "ValidateDropDownOptions"}
_ACTIVITY_KEYS = {
    "ActivityEvent",
    "ActivityNote",
    "ActivityDateTime",
    "Fields",
    "ActivityOwnerEmail",
}

_CREATE = "/v2/prospectactivity.svc/createcustom"
_ACTIVITY_TYPES = "/v2/prospectactivity.svc/activitytypes.get"
_ACTIVITY_SETTING = "/v2/prospectactivity.svc/customactivity/getactivitysetting"
_LEADS_META = "/v2/leadmanagement.svc/leadsmetadata.get"

_RATE_LIMIT_TYPE = "MXAPIRateLimitExceededException"
_BAD_GATEWAY = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)


# --------------------------------------------------------------------------------------------
# Schema


def _options(items: list[str]) -> list[dict[str, str]]:
    return [{"Value": v, "Text": v} for v in items]


def _lead_field(
    name: str,
    display: str,
    data_type: str = "String",
    max_length: int = 100,
    *,
    identifier: bool = False,
    options: list[str] | None = None,
) -> dict[str, Any]:
    f: dict[str, Any] = {
        "SchemaName": name,
        "DisplayName": display,
        "DataType": data_type,
        "IsMandatory": False,
        "MaxLength": str(max_length),
        "IsLeadIdentifier": identifier,
    }
    if options is not None:
        f["Options"] = _options(options)
    return f


def _default_lead_fields() -> list[dict[str, Any]]:
    kyc = _lead_field("mx_KYC", "KYC", "CustomObject", 0)
    kyc["MaxLength"] = ""
    kyc["Fields"] = [
        _lead_field("Status", "Status", "Select", options=["Pending", "Verified", "Rejected"]),
        _lead_field("Document_Number", "Document Number", "String", 50),
    ]
    return [
        _lead_field("FirstName", "First Name"),
        _lead_field("LastName", "Last Name"),
        _lead_field("EmailAddress", "Email", "Email", identifier=True),
        _lead_field("Phone", "Phone Number", "Phone", 50),
        _lead_field("Mobile", "Mobile Number", "Phone", 50),
        _lead_field("Company", "Company", max_length=200),
        _lead_field("JobTitle", "Job Title"),
        _lead_field("Source", "Lead Source"),
        _lead_field("mx_City", "City"),
        _lead_field("mx_State", "State"),
        _lead_field("mx_Country", "Country"),
        _lead_field(
            "ProspectStage", "Lead Stage", "Select", options=["Prospect", "Opportunity", "Customer"]
        ),
        kyc,
    ]


def _activity_field(
    name: str,
    display: str,
    data_type: str,
    *,
    mandatory: bool = False,
    options: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "SchemaName": name,
        "DisplayName": display,
        "DataType": data_type,
        "IsMandatory": mandatory,
        "OptionSet": _options(options) if options else [],
    }


def _default_activity_types() -> list[dict[str, Any]]:
    delivery = _activity_field("mx_Custom_4", "Delivery", "CustomObject")
    delivery["Fields"] = [
        _activity_field("City", "City", "String"),
        _activity_field("Slot", "Slot", "Dropdown", options=["Morning", "Evening"]),
    ]
    return [
        {
            "ActivityEvent": 105,
            "ActivityEventName": "Website_Purchase",
            "DisplayName": "Website Purchase",
            "Fields": [
                _activity_field("mx_Custom_1", "Amount", "Number"),
                _activity_field("mx_Custom_2", "Product", "String"),
                _activity_field(
                    "mx_Custom_3", "Interest", "Dropdown", options=["Hot", "Warm", "Cold"]
                ),
                delivery,
            ],
        },
        {
            "ActivityEvent": 106,
            "ActivityEventName": "Phone_Call",
            "DisplayName": "Phone Call",
            "Fields": [_activity_field("mx_Custom_1", "Call Outcome", "String", mandatory=True)],
        },
    ]


@dataclass
class SandboxSchema:
    """What the emulated account knows: its lead fields and activity types.

    ``lead_fields`` items look like LeadsMetaData.Get items (``SchemaName``, ``DisplayName``,
    ``DataType``, ``IsMandatory``, ``MaxLength`` as a string, ``Options`` for dropdowns,
    ``IsLeadIdentifier``); a ``CustomObject`` field carries its sub-fields in ``Fields``.
    ``activity_types`` items: ``ActivityEvent`` (int), ``ActivityEventName``, ``DisplayName``,
    ``Fields`` (``SchemaName``, ``DisplayName``, ``DataType``, ``IsMandatory``, ``OptionSet``);
    a ``CustomObject`` activity field carries its sub-fields (same keys) in ``Fields``. Sets
    nest one level only. A field is a dropdown if its DataType says so or it has options.
    """

    lead_fields: list[dict[str, Any]]
    activity_types: list[dict[str, Any]]

    @classmethod
    def default(cls) -> SandboxSchema:
        """The schema of a fresh sandbox: common lead fields, mx_KYC, activities 105 and 106.

        Activity 105 has mx_Custom_1 (Number), mx_Custom_2 (String), mx_Custom_3 (dropdown
        Hot/Warm/Cold) and the custom field set mx_Custom_4 "Delivery" with City (String) and
        Slot (dropdown Morning/Evening); 106 has a mandatory mx_Custom_1.
        """
        return cls(lead_fields=_default_lead_fields(), activity_types=_default_activity_types())

    @classmethod
    def from_file(cls, path: str | Path) -> SandboxSchema:
        """Load a schema from YAML or JSON with the keys ``lead_fields`` and ``activity_types``.

        Raises ConfigError (one line, naming the file and the bad key) when the file is
        missing, unparsable or does not have the expected shape.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"{p}: cannot read the sandbox schema file ({exc.strerror or exc}); check the path"
            ) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: the sandbox schema file is not UTF-8 text") from exc
        try:
            data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(
                f"{p}: the sandbox schema file is not valid "
                f"{'JSON' if p.suffix.lower() == '.json' else 'YAML'} ({exc}); fix its syntax"
            ) from exc
        return cls(**_validate_schema_data(data, str(p)))


def _validate_schema_data(data: Any, where: str) -> dict[str, Any]:
    """Check the shape of a schema file and fill in the optional keys; one-line errors."""

    def fail(msg: str) -> ConfigError:
        return ConfigError(f"{where}: {msg}; fix the sandbox schema")

    if not isinstance(data, dict):
        raise fail("expected a mapping with the keys 'lead_fields' and 'activity_types'")
    unknown = sorted(set(data) - {"lead_fields", "activity_types"})
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (allowed: lead_fields, activity_types)")
    for key in ("lead_fields", "activity_types"):
        if not isinstance(data.get(key), list):
            raise fail(f"{key!r} must be a list")

    def check_fields(fields: Any, loc: str, options_key: str, *, nested: bool) -> list[dict]:
        if not isinstance(fields, list):
            raise fail(f"{loc} must be a list")
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, f in enumerate(fields):
            floc = f"{loc}[{i}]"
            if (
                not isinstance(f, dict)
                or not isinstance(f.get("SchemaName"), str)
                or not f["SchemaName"].strip()
            ):
                raise fail(f"{floc} needs a non-empty string 'SchemaName'")
            name = f["SchemaName"]
            if name in seen:
                raise fail(f"{floc}: duplicate SchemaName {name!r}")
            seen.add(name)
            f = dict(f)
            f.setdefault("DisplayName", name)
            f.setdefault("DataType", "String")
            f.setdefault("IsMandatory", False)
            if not isinstance(f["DataType"], str):
                raise fail(f"{floc} ({name}): 'DataType' must be a string")
            if "MaxLength" in f and f["MaxLength"] not in ("", None):
                try:
                    int(str(f["MaxLength"]))
                except ValueError:
                    raise fail(f"{floc} ({name}): 'MaxLength' must be a whole number") from None
                f["MaxLength"] = str(f["MaxLength"])
            opts = f.get(options_key)
            if opts is not None and (
                not isinstance(opts, list) or any(_option_value(o) is None for o in opts)
            ):
                raise fail(
                    f"{floc} ({name}): {options_key!r} must be a list of strings or "
                    "{Value, Text} objects"
                )
            if f["DataType"].lower() == "customobject":
                if nested:
                    raise fail(f"{floc} ({name}): custom field sets cannot be nested")
                f["Fields"] = check_fields(
                    f.get("Fields"), f"{floc}.Fields", options_key, nested=True
                )
            out.append(f)
        return out

    lead_fields = check_fields(data["lead_fields"], "lead_fields", "Options", nested=False)
    activity_types: list[dict[str, Any]] = []
    codes: set[int] = set()
    for i, t in enumerate(data["activity_types"]):
        loc = f"activity_types[{i}]"
        code = t.get("ActivityEvent") if isinstance(t, dict) else None
        if not isinstance(code, int) or isinstance(code, bool):
            raise fail(f"{loc} needs an integer 'ActivityEvent'")
        if code in codes:
            raise fail(f"{loc}: duplicate ActivityEvent {code}")
        codes.add(code)
        t = dict(t)
        t.setdefault("ActivityEventName", f"Activity_{code}")
        t.setdefault("DisplayName", t["ActivityEventName"])
        # Activity custom field sets nest one level, like the lead's.
        t["Fields"] = check_fields(t.get("Fields", []), f"{loc}.Fields", "OptionSet", nested=False)
        activity_types.append(t)
    return {"lead_fields": lead_fields, "activity_types": activity_types}


def _option_value(option: Any) -> str | None:
    if isinstance(option, str):
        return option
    if isinstance(option, dict) and isinstance(option.get("Value"), str):
        return option["Value"]
    return None


def _allowed_options(f: dict[str, Any], options_key: str) -> list[str] | None:
    """The allowed values of a dropdown field, or None if the field is not a dropdown."""
    opts = f.get(options_key) or []
    values: list[str] = []
    for o in opts:
        v = _option_value(o)
        if v is not None:
            values.append(v)
        if isinstance(o, dict) and isinstance(o.get("Text"), str):
            values.append(o["Text"])
    if values:
        return values
    if str(f.get("DataType", "")).lower() in _DROPDOWN_TYPES:
        return []  # a dropdown with no options accepts nothing but empty
    return None


def _is_cfs(f: dict[str, Any]) -> bool:
    return str(f.get("DataType", "")).lower() == "customobject"


# --------------------------------------------------------------------------------------------
# Settings and records


# Fault names in the order a draw walks them (keep: a seed's faults depend on it).
FAULTS = (
    "error_500_plain",
    "error_500_mx",
    "error_200",
    "throttle_429",
    "throttle_403",
    "throttle_200",
    "proxy_502",
    "drop_before",
    "drop_after",
)
# Faults of the network in front of the API: they hit every CreateCustom call, before
# authentication and the rate limiter (drop_before, proxy_502) or after the answer (drop_after).
_NETWORK_FAULTS = frozenset({"drop_before", "proxy_502", "drop_after"})
_TRUE = {"1", "true", "yes", "on", ""}
_FALSE = {"0", "false", "no", "off"}


@dataclass
class FaultConfig:
    """Simulated network conditions and injected faults, deterministic under ``seed``.

    Latency: each ``/v2/`` call draws ``max(0, latency + uniform(-jitter, jitter))`` seconds:
    half is spent before the arrival is recorded (uplink), half after the response is decided
    (downlink). Jitter can reorder arrivals, as a real network does.

    Faults (CreateCustom only; each a probability per call, 0..1, summing to at most 1): one
    ``random()`` per arriving CreateCustom call picks at most one of them, walking
    :data:`FAULTS` in order. Latency and faults share one ``random.Random(seed)``, so a seed
    and an order of calls always give the same faults. None of them creates anything except
    ``drop_after``.

    - ``error_500_plain``: HTTP 500 with no MX type (a bare HTML page or
      ``{"Status": "Error", "Message": ...}``): transient, worth a retry.
    - ``error_500_mx``: HTTP 500 ``MXInvalidInputException`` "Something went wrong": LeadSquared's
      way of reporting a row error, so permanent.
    - ``error_200``: HTTP 200 with ``Status: Error`` and ``MXInvalidInputException``: permanent.
    - ``throttle_429``/``throttle_403``/``throttle_200``: the rate-limit answer
      (``MXAPIRateLimitExceededException``, "API calls exceeded the limit of R in P
      second(s)") with that status, even though the real limiter admitted the call.
    - ``proxy_502``: a proxy's HTML 502 page; the API never saw the call (not metered).
    - ``drop_before``: the connection is closed before the call is processed (not metered);
      the client sees a disconnect, so it cannot know that nothing happened.
    - ``drop_after``: the call is processed (lead and activity created, if valid), then the
      connection is closed instead of answering: "response lost after the activity was
      created".

    ``nonatomic_upsert``: CreateCustom looks the lead up, sleeps ``upsert_pause`` seconds,
    then inserts, so two concurrent calls for one new key create two leads (LeadSquared may
    do so; see :meth:`Sandbox.duplicate_leads`).

    The compact form used by ``--faults`` is :meth:`from_spec`.
    """

    latency: float = 0.0
    jitter: float = 0.0
    seed: int | None = None
    error_500_plain: float = 0.0
    error_500_mx: float = 0.0
    error_200: float = 0.0
    throttle_429: float = 0.0
    throttle_403: float = 0.0
    throttle_200: float = 0.0
    proxy_502: float = 0.0
    drop_before: float = 0.0
    drop_after: float = 0.0
    nonatomic_upsert: bool = False
    upsert_pause: float = 0.05

    @classmethod
    def from_spec(cls, spec: str) -> FaultConfig:
        """Parse ``"drop_after=0.05,error_500_plain=0.1,seed=7"``: comma-separated
        ``name=value`` items naming fields of this class; a bare ``nonatomic_upsert`` means
        ``nonatomic_upsert=true``. An empty spec means no faults.

        Raises ConfigError (one line, naming the bad item) on an unknown name, a bad value, a
        repeated name, or probabilities outside 0..1 or summing to more than 1.
        """
        where = f"--faults {spec!r}"
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            name, _, raw = (s.strip() for s in item.partition("="))
            if name not in known:
                raise ConfigError(f"{where}: unknown fault {name!r}; use one of {', '.join(known)}")
            if name in values:
                raise ConfigError(f"{where}: {name!r} is given twice; give it once")
            if name == "nonatomic_upsert":
                if raw.lower() not in _TRUE | _FALSE:
                    raise ConfigError(f"{where}: {name}={raw!r} must be true or false")
                values[name] = raw.lower() in _TRUE
                continue
            try:
                values[name] = int(raw) if name == "seed" else float(raw)
            except ValueError:
                kind = "a whole number" if name == "seed" else "a number"
                raise ConfigError(f"{where}: {name}={raw!r} must be {kind}") from None
        config = cls(**values)
        config.validate(where)
        return config

    def to_spec(self) -> str:
        """The compact form of this config (fields that differ from the defaults)."""
        parts: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            if isinstance(value, bool):
                parts.append(f"{f.name}={'true' if value else 'false'}")
            else:
                parts.append(f"{f.name}={value!r}")
        return ",".join(parts)

    def validate(self, where: str = "sandbox faults") -> None:
        """Raise ConfigError unless every setting is in range."""
        for name in ("latency", "jitter", "upsert_pause"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(
                    f"{where}: {name} must be a number of seconds >= 0, not {value!r}"
                )
        total = 0.0
        for name in FAULTS:
            p = getattr(self, name)
            if not (isinstance(p, int | float) and 0 <= p <= 1):
                raise ConfigError(f"{where}: {name} must be a probability from 0 to 1, not {p!r}")
            total += p
        if total > 1 + 1e-9:
            raise ConfigError(
                f"{where}: fault probabilities add up to {total:g}, more than 1; lower them"
            )

    @property
    def any_fault(self) -> bool:
        """Whether any fault has a chance to happen (else no fault is drawn at all)."""
        return any(getattr(self, name) for name in FAULTS)

    def pick(self, u: float) -> str:
        """The fault that a uniform draw ``u`` in [0, 1) selects, or "" for none."""
        edge = 0.0
        for name in FAULTS:
            edge += getattr(self, name)
            if u < edge:
                return name
        return ""


@dataclass
class CallRecord:
    """One request to a ``/v2/`` path, as the server saw it.

    ``arrived`` is ``clock()`` at arrival; ``path`` has no query string (keys may be in it);
    ``http_status`` is 0 until the response is decided (and stays 0 for ``drop_before``; for
    ``drop_after`` it is the answer that was lost); ``exception_type`` is the ``MX...``
    type of an error envelope, "" otherwise; ``metered`` says whether the rate limiter saw
    the call (authenticated, known endpoint); ``fault`` names the injected fault (see
    :class:`FaultConfig`), "" for none; ``activity_id`` is the activity this call created, ""
    if none, so a test can reconcile what landed with what the client reported.
    """

    arrived: float
    method: str
    path: str
    http_status: int = 0
    exception_type: str = ""
    metered: bool = False
    fault: str = ""
    activity_id: str = ""


@dataclass
class _CreateCall:
    """A validated CreateCustom request, between its lookup and its insert."""

    attrs: dict[str, str]
    sets: dict[str, dict[str, str]]
    search_by: str
    prospect_id: str | None
    activity: dict[str, Any]


class _ApiError(Exception):
    """An error answered with the LeadSquared error envelope."""

    def __init__(self, status: int, exception_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.exception_type = exception_type
        self.message = message


def _invalid(message: str, status: int = 500) -> _ApiError:
    return _ApiError(status, "MXInvalidInputException", message)


def _missing(message: str) -> _ApiError:
    return _ApiError(500, "MXMandatoryAttributeMissingException", message)


def _short(value: str, limit: int = 60) -> str:
    """Quote a user value for an error message without flooding it."""
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def _check_loopback(host: str) -> None:
    """The sandbox has well-known keys, so it must never listen beyond this machine."""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ConfigError(
        f"sandbox host {host!r} is not a loopback address; use 127.0.0.1, ::1 or localhost"
    )


# --------------------------------------------------------------------------------------------
# The server


_T = TypeVar("_T")


class Sandbox:
    """An emulated LeadSquared account served over HTTP on loopback.

    State (``calls``, ``leads``, ``activities``) is plain Python data that tests read directly;
    treat it as read-only and use :meth:`reset` (or ``POST /_sandbox/reset``) to clear it.
    """

    def __init__(
        self,
        *,
        access_key: str = DEFAULT_ACCESS_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        rate: int = 25,
        per: float = 5.0,
        schema: SandboxSchema | None = None,
        faults: FaultConfig | None = None,
        count_rejected: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(rate, int) or isinstance(rate, bool) or rate < 1:
            raise ConfigError(f"sandbox rate must be a whole number of calls >= 1, not {rate!r}")
        if not (isinstance(per, int | float) and math.isfinite(per) and per > 0):
            raise ConfigError(
                f"sandbox window 'per' must be a positive number of seconds, not {per!r}"
            )
        if not access_key or not secret_key:
            raise ConfigError("sandbox access key and secret key must not be empty")
        self._access_key = access_key.encode()
        self._secret_key = secret_key.encode()
        self.rate = rate
        self.per = float(per)
        # Normalised (defaults filled in) and checked here too, so a schema built in Python
        # fails at construction with a clear message, not as a bare 500 on the first call.
        given = schema if schema is not None else SandboxSchema.default()
        self.schema = SandboxSchema(
            **_validate_schema_data(dataclasses.asdict(given), "sandbox schema")
        )
        self.faults = faults if faults is not None else FaultConfig()
        self.faults.validate()
        self.count_rejected = count_rejected
        self._clock = clock
        self._random = random.Random(self.faults.seed)

        self.calls: list[CallRecord] = []
        self.leads: dict[str, dict[str, Any]] = {}
        self.activities: list[dict[str, Any]] = []
        self.base_url = ""
        self._in_flight = 0

        self._window: deque[float] = deque()  # counted arrivals, oldest first
        # attribute -> normalised value -> lead id; built on the first SearchBy of an attribute.
        self._index: dict[str, dict[str, str]] = {}
        self._lead_fields = {f["SchemaName"]: f for f in self.schema.lead_fields}
        self._activity_types = {t["ActivityEvent"]: t for t in self.schema.activity_types}

        self.app = web.Application()
        self.app.router.add_get("/_sandbox/state", self._handle_state)
        self.app.router.add_post("/_sandbox/reset", self._handle_reset)
        self.app.router.add_route("*", "/{tail:[vV]2/.*}", self._handle_v2)
        self._runner: web.AppRunner | None = None

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 picks a free port); return and set :attr:`base_url`."""
        _check_loopback(host)
        if self._runner is not None:
            raise RuntimeError("sandbox already started")
        # access_log=None: the access log would print query strings, which may hold keys.
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"sandbox cannot listen on {host}:{port} ({exc.strerror or exc}); pick another port"
            ) from exc
        self._runner = runner
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{bound}"
        return self.base_url

    async def stop(self) -> None:
        """Stop listening; state stays readable. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---- state for tests --------------------------------------------------------------------

    def arrivals(self, path_suffix: str = "CreateCustom") -> list[float]:
        """Arrival times of the calls whose path ends with ``path_suffix`` (any status)."""
        suffix = path_suffix.lower()
        return [c.arrived for c in self.calls if c.path.lower().endswith(suffix)]

    def max_in_window(self, per: float | None = None) -> int:
        """The most metered arrivals (accepted or refused) in any window ``(t - per, t]``.

        ``<= rate`` means the client never overran the limit at the server.
        """
        width = self.per if per is None else per
        times = sorted(c.arrived for c in self.calls if c.metered)
        best = 0
        lo = 0
        for hi, t in enumerate(times):
            while times[lo] <= t - width:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def duplicate_leads(self) -> int:
        """How many leads share a SearchBy value with another lead (0 unless an upsert raced).

        Compared per attribute that calls have searched by, normalised as the lookup does.
        """
        duplicated: set[str] = set()
        for attribute in self._index:
            groups: dict[str, list[str]] = {}
            for lead_id, lead in self.leads.items():
                key = self._normalise(attribute, lead.get(attribute))
                if key:
                    groups.setdefault(key, []).append(lead_id)
            for ids in groups.values():
                if len(ids) > 1:
                    duplicated.update(ids)
        return len(duplicated)

    @property
    def in_flight(self) -> int:
        """Requests being handled plus client connections still open.

        0 means quiet: nothing more will land unless a client sends again. A test waits for it
        after killing a client, since the server finishes requests whose client has gone.
        """
        server = self._runner.server if self._runner is not None else None
        return self._in_flight + (len(server.connections) if server is not None else 0)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able deep copy of ``calls``, ``leads`` and ``activities``."""
        return {
            "calls": [dataclasses.asdict(c) for c in self.calls],
            "leads": copy.deepcopy(self.leads),
            "activities": copy.deepcopy(self.activities),
        }

    def reset(self) -> None:
        """Forget leads, activities, calls and the rate-limit window."""
        self.calls.clear()
        self.leads.clear()
        self.activities.clear()
        self._window.clear()
        self._index.clear()

    # ---- helpers endpoints ------------------------------------------------------------------

    async def _handle_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def _handle_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"Status": "Success"})

    # ---- /v2/ -------------------------------------------------------------------------------

    def _latency_halves(self) -> tuple[float, float]:
        f = self.faults
        if f.latency == 0 and f.jitter == 0:
            return 0.0, 0.0
        total = f.latency + (self._random.uniform(-f.jitter, f.jitter) if f.jitter else 0.0)
        half = max(0.0, total) / 2
        return half, half

    async def _handle_v2(self, request: web.Request) -> web.StreamResponse:
        # The body is part of the uplink: read it before the arrival is stamped, so everything
        # from arrival to the decision runs without an await (atomic upsert, exact limiter),
        # unless FaultConfig.nonatomic_upsert asks for the race.
        self._in_flight += 1
        try:
            body = await request.read()
            up, down = self._latency_halves()
            if up:
                await asyncio.sleep(up)
            record = CallRecord(arrived=self._clock(), method=request.method, path=request.path)
            self.calls.append(record)
            fault = self._draw_fault(request)
            try:
                response = await self._dispatch(request, body, record, fault)
            except Exception:  # a bug here must look like LeadSquared's bare 500, not kill a test
                log.exception(
                    "sandbox: unexpected error handling %s %s", request.method, request.path
                )
                response = web.Response(status=500, text="500 Internal Server Error")
            if record.fault != "drop_before":
                record.http_status = response.status
            if record.fault in ("drop_before", "drop_after"):
                # Close without answering: the client sees the server disconnect.
                if request.transport is not None:
                    request.transport.close()
                return response  # aiohttp drops it quietly: the transport is closed
            if down:
                await asyncio.sleep(down)
            return response
        finally:
            self._in_flight -= 1

    def _draw_fault(self, request: web.Request) -> str:
        """One draw per arriving CreateCustom POST when faults are on (see FaultConfig)."""
        if not self.faults.any_fault:
            return ""
        if request.method != "POST" or request.path.lower().rstrip("/") != _CREATE:
            return ""
        return self.faults.pick(self._random.random())

    def _throttled(self, status: int) -> _ApiError:
        return _ApiError(
            status,
            _RATE_LIMIT_TYPE,
            f"API calls exceeded the limit of {self.rate} in {self.per:g} second(s)",
        )

    def _server_fault(self, fault: str) -> web.Response | None:
        """The answer of an injected server-side fault, or None to process the call."""
        if fault == "error_500_plain":
            # Both shapes seen in the wild: an IIS page, and an envelope without a type.
            if self._random.random() < 0.5:
                return web.Response(
                    status=500,
                    text="<html><body><h1>500 - Internal server error.</h1></body></html>",
                    content_type="text/html",
                )
            return web.json_response(
                {"Status": "Error", "Message": "An error has occurred (sandbox fault)"},
                status=500,
            )
        if fault == "error_500_mx":
            raise _invalid("Something went wrong (sandbox fault)")
        if fault == "error_200":
            raise _invalid("Something went wrong (sandbox fault)", 200)
        if fault.startswith("throttle_"):
            raise self._throttled(int(fault.removeprefix("throttle_")))
        return None

    async def _dispatch(
        self, request: web.Request, body: bytes, record: CallRecord, fault: str
    ) -> web.Response:
        routes: dict[str, tuple[str, Callable[[web.Request, bytes], Any]]] = {
            _CREATE: ("POST", self._create_custom),
            _ACTIVITY_TYPES: ("GET", self._get_activity_types),
            _ACTIVITY_SETTING: ("GET", self._get_activity_setting),
            _LEADS_META: ("GET", self._get_leads_metadata),
        }
        route = routes.get(request.path.lower().rstrip("/"))
        if route is None:
            return web.Response(status=404, text="404: Not Found")
        method, handler = route
        if request.method != method:
            return web.Response(status=405, text="405: Method Not Allowed")
        if fault in _NETWORK_FAULTS:
            record.fault = fault
        if fault == "drop_before":
            return web.Response(status=500)  # never sent: _handle_v2 closes the connection
        if fault == "proxy_502":
            return web.Response(status=502, text=_BAD_GATEWAY, content_type="text/html")
        try:
            if not self._authorized(request):
                raise _ApiError(
                    401,
                    "MXUnAuthorizedAccessException",
                    "Invalid access key or secret key, or keys of another region's account",
                )
            record.metered = True
            if not self._admit(record.arrived):
                raise self._throttled(429)
            if fault and fault not in _NETWORK_FAULTS:
                record.fault = fault
                injected = self._server_fault(fault)
                if injected is not None:
                    return injected
            if handler == self._create_custom and self.faults.nonatomic_upsert:
                payload = await self._create_custom_racy(request, body)
            else:
                payload = handler(request, body)
        except _ApiError as err:
            record.exception_type = err.exception_type
            return web.json_response(
                {
                    "Status": "Error",
                    "ExceptionType": err.exception_type,
                    "ExceptionMessage": err.message,
                },
                status=err.status,
            )
        if handler == self._create_custom:
            record.activity_id = payload["Message"]["Id"]
        return web.json_response(payload)

    def _authorized(self, request: web.Request) -> bool:
        headers = request.headers  # case-insensitive
        if "x-LSQ-AccessKey" in headers or "x-LSQ-SecretKey" in headers:
            access = headers.get("x-LSQ-AccessKey", "")
            secret = headers.get("x-LSQ-SecretKey", "")
        else:
            access = request.query.get("accessKey", "")
            secret = request.query.get("secretKey", "")
        # Constant-time, and both compared, so timing says nothing about which key was wrong.
        ok_access = hmac.compare_digest(access.encode(), self._access_key)
        ok_secret = hmac.compare_digest(secret.encode(), self._secret_key)
        return ok_access and ok_secret

    def _admit(self, now: float) -> bool:
        """Rolling window: refuse if ``rate`` or more counted arrivals lie in (now - per, now]."""
        window = self._window
        cutoff = now - self.per
        while window and window[0] <= cutoff:
            window.popleft()
        if len(window) >= self.rate:
            if self.count_rejected:
                window.append(now)
            return False
        window.append(now)
        return True

    # ---- metadata ---------------------------------------------------------------------------

    def _get_activity_types(self, request: web.Request, body: bytes) -> list[dict[str, Any]]:
        return [
            {
                "ActivityEvent": t["ActivityEvent"],
                "ActivityEventName": t["ActivityEventName"],
                "DisplayName": t["DisplayName"],
            }
            for t in self.schema.activity_types
        ]

    def _get_activity_setting(self, request: web.Request, body: bytes) -> dict[str, Any]:
        raw = request.query.get("code", "")
        try:
            code = int(raw)
        except ValueError:
            raise _invalid(f"Invalid activity event code {_short(raw)}") from None
        t = self._activity_types.get(code)
        if t is None:
            raise _invalid(f"Activity event {code} does not exist in this account")
        return {
            "Name": t["ActivityEventName"],
            "DisplayName": t["DisplayName"],
            "Fields": copy.deepcopy(t["Fields"]),
        }

    def _get_leads_metadata(self, request: web.Request, body: bytes) -> list[dict[str, Any]]:
        return copy.deepcopy(self.schema.lead_fields)

    # ---- CreateCustom -----------------------------------------------------------------------

    def _create_custom(self, request: web.Request, body: bytes) -> dict[str, Any]:
        call = self._parse_create(request, body)
        # Every check is done; from here on nothing fails, so a refused call stores nothing.
        # No await between lookup and insert: the upsert is atomic.
        return self._store(call, self._lookup(call))

    async def _create_custom_racy(self, request: web.Request, body: bytes) -> dict[str, Any]:
        """FaultConfig.nonatomic_upsert: lookup, pause, insert, as a racy upsert would."""
        call = self._parse_create(request, body)
        lead_id = self._lookup(call)
        await asyncio.sleep(self.faults.upsert_pause)
        return self._store(call, lead_id)

    def _parse_create(self, request: web.Request, body: bytes) -> _CreateCall:
        if request.content_type.lower() != "application/json":
            raise _invalid(
                f"Content-Type must be application/json, not {_short(request.content_type)}", 400
            )
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _invalid("Request body is not valid JSON", 400) from None
        if not isinstance(payload, dict):
            raise _invalid("Request body must be a JSON object", 400)
        unknown = sorted(set(payload) - _ROOT_KEYS)
        if unknown:
            raise _invalid(f"Unknown property {_short(unknown[0])} in the request body", 400)
        skip_dropdowns = payload.get("ValidateDropDownOptions", False)
        if not isinstance(skip_dropdowns, bool):
            raise _invalid("ValidateDropDownOptions must be true or false")

        attrs, sets, search_by, prospect_id = self._parse_lead_details(payload.get("LeadDetails"))
        activity = self._parse_activity(payload.get("Activity"), skip_dropdowns=skip_dropdowns)
        return _CreateCall(attrs, sets, search_by, prospect_id, activity)

    def _lookup(self, call: _CreateCall) -> str | None:
        """The lead the call updates, or None for a new one (whose mandatory fields are checked)."""
        if call.search_by.lower() == "prospectid":
            if not call.prospect_id or call.prospect_id not in self.leads:
                raise _invalid(
                    f"SearchBy ProspectId: no lead with ProspectID {_short(call.prospect_id or '')}"
                )
            return call.prospect_id
        lead_id = self._find_lead(call.search_by, call.attrs[call.search_by])
        if lead_id is None:
            self._check_mandatory_lead_fields(call.attrs, call.sets)
        return lead_id

    def _store(self, call: _CreateCall, lead_id: str | None) -> dict[str, Any]:
        """Insert or update the lead, then add the activity; never fails."""
        if lead_id is None or lead_id not in self.leads:
            lead_id = str(uuid.uuid4())
            self.leads[lead_id] = {"ProspectID": lead_id}
        self._write_lead(lead_id, call.attrs, call.sets)

        activity_id = str(uuid.uuid4())
        activity = dict(call.activity, Id=activity_id, LeadId=lead_id, CreatedAt=self._clock())
        self.activities.append(activity)
        return {"Status": "Success", "Message": {"Id": activity_id, "RelatedId": lead_id}}

    def _parse_lead_details(
        self, details: Any
    ) -> tuple[dict[str, str], dict[str, dict[str, str]], str, str | None]:
        """Validate LeadDetails; return attributes, custom field sets, SearchBy, ProspectID."""
        if not isinstance(details, list) or not details:
            raise _invalid("LeadDetails must be a non-empty list of {Attribute, Value} objects")
        attrs: dict[str, str] = {}
        sets: dict[str, dict[str, str]] = {}
        search_by: list[str] = []
        prospect_id: str | None = None
        for i, item in enumerate(details):
            name, value = self._pair(item, f"LeadDetails[{i}]", "Attribute", extra={"Fields"})
            if name == "SearchBy":
                search_by.append(value)
                continue
            if name.lower() == "prospectid":
                prospect_id = value.strip()
                continue
            f = self._lead_fields.get(name)
            if f is None:
                raise _invalid(f"Unknown lead attribute {_short(name)}{self._hint(name)}")
            if _is_cfs(f):
                sets[name] = self._parse_cfs(f, item, f"LeadDetails[{i}] ({name})")
                continue
            if "Fields" in item:
                raise _invalid(f"Lead attribute {name} is not a custom field set; drop its Fields")
            self._check_value(f, value, f"Lead attribute {name}", "Options")
            attrs[name] = value
        if len(search_by) != 1:
            raise _invalid(
                f"LeadDetails must have exactly one SearchBy entry, found {len(search_by)}"
            )
        key = search_by[0]
        if key.lower() == "prospectid":
            if not prospect_id:
                raise _invalid("SearchBy ProspectId needs a ProspectID entry with a lead id")
            return attrs, sets, key, prospect_id
        if not attrs.get(key, "").strip():
            raise _invalid(
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
            raise _invalid(f'{where} is a custom field set: send Value "" and its Fields')
        fields = item.get("Fields")
        if not isinstance(fields, list):
            raise _invalid(f"{where} is a custom field set: Fields must be a list")
        subs = {s["SchemaName"]: s for s in f.get("Fields", [])}
        other_key = "SchemaName" if name_key == "Attribute" else "Attribute"
        out: dict[str, str] = {}
        for j, sub in enumerate(fields):
            sub_where = f"{where}.Fields[{j}]"
            if isinstance(sub, dict) and name_key not in sub and other_key in sub:
                raise _invalid(
                    f"{sub_where}: name the field with {name_key}, as the set itself is, "
                    f"not {other_key}"
                )
            name, value = self._pair(sub, sub_where, name_key)
            sf = subs.get(name)
            if sf is None:
                raise _invalid(
                    f"Unknown field {_short(name)} in custom field set {f['SchemaName']}"
                    f"{self._hint(name, subs)}"
                )
            self._check_value(
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
            raise _invalid("Activity must be an object with an ActivityEvent")
        unknown = sorted(set(activity) - _ACTIVITY_KEYS)
        if unknown:
            raise _invalid(f"Unknown Activity property {_short(unknown[0])}")
        code = activity.get("ActivityEvent")
        if not isinstance(code, int) or isinstance(code, bool):
            raise _invalid("Activity.ActivityEvent must be an integer activity event code")
        t = self._activity_types.get(code)
        if t is None:
            raise _invalid(f"Activity event {code} does not exist in this account")
        note = activity.get("ActivityNote", "")
        if not isinstance(note, str):
            raise _invalid("Activity.ActivityNote must be a string")
        when = activity.get("ActivityDateTime")
        if when is None or when == "":
            when = datetime.now(UTC).strftime(DATETIME_FORMAT)
        else:
            when = self._check_datetime(when)
        fields = activity.get("Fields", [])
        if not isinstance(fields, list):
            raise _invalid("Activity.Fields must be a list of {SchemaName, Value} objects")
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
            name, value = self._pair(item, where, name_key, extra={"Fields"})
            f = known.get(name)
            if f is None:
                raise _invalid(
                    f"Field {_short(name)} does not belong to activity event {code}"
                    f"{self._hint(name, known)}"
                )
            if _is_cfs(f):
                if "Fields" not in item:
                    raise _invalid(
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
                raise _invalid(f"Activity field {name} is not a custom field set; drop its Fields")
            if name_key != "SchemaName":
                raise _invalid(
                    f"{where} ({name}): name a plain activity field with SchemaName, not Attribute"
                )
            self._check_value(
                f, value, f"Activity field {name}", "OptionSet", skip_dropdown=skip_dropdowns
            )
            values[name] = value
        self._check_mandatory_activity_fields(code, known, values)
        return {
            "ActivityEvent": code,
            "ActivityNote": note,
            "ActivityDateTime": when,
            "Fields": values,
        }

    @staticmethod
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
                        raise _missing(
                            f"Mandatory field {name}.{sub['SchemaName']} of activity event "
                            f"{code} is missing"
                        )
                sent = any(v.strip() for v in value.values())
            else:
                sent = bool(value.strip())
            if f.get("IsMandatory") and not sent:
                raise _missing(f"Mandatory field {name} of activity event {code} is missing")

    @staticmethod
    def _check_datetime(when: Any) -> str:
        if not isinstance(when, str) or not _DATETIME_RE.fullmatch(when):
            raise _invalid(
                f"Activity.ActivityDateTime {_short(str(when))} must be yyyy-MM-dd HH:mm:ss (UTC)"
            )
        try:
            parsed = datetime.strptime(when, DATETIME_FORMAT)
        except ValueError:
            raise _invalid(f"Activity.ActivityDateTime {_short(when)} is not a real date") from None
        now = datetime.now(UTC).replace(tzinfo=None)
        if parsed > now + FUTURE_TOLERANCE:
            raise _invalid(
                f"Activity.ActivityDateTime {when} is in the future (UTC now is "
                f"{now.strftime(DATETIME_FORMAT)})"
            )
        return when

    @staticmethod
    def _pair(
        item: Any, where: str, name_key: str, extra: set[str] | frozenset[str] = frozenset()
    ) -> tuple[str, str]:
        """Validate a ``{name_key, Value}`` object with string members."""
        if not isinstance(item, dict):
            raise _invalid(f"{where} must be an object with {name_key} and Value")
        name = item.get(name_key)
        value = item.get("Value")
        if not isinstance(name, str) or not name:
            raise _invalid(f"{where} needs a non-empty string {name_key}")
        if not isinstance(value, str):
            raise _invalid(f"{where} ({name}): Value must be a string")
        unknown = sorted(set(item) - {name_key, "Value"} - set(extra))
        if unknown:
            raise _invalid(f"{where} ({name}): unknown property {_short(unknown[0])}")
        return name, value

    @staticmethod
    def _check_value(
        f: dict[str, Any], value: str, where: str, options_key: str, *, skip_dropdown: bool = False
    ) -> None:
        """Check one value against its field's type, length and options. Empty is allowed."""
        if value == "":
            return
        max_length = str(f.get("MaxLength") or "").strip()
        if max_length.isdigit() and int(max_length) > 0 and len(value) > int(max_length):
            raise _invalid(
                f"{where}: value is {len(value)} characters, more than its MaxLength {max_length}"
            )
        data_type = str(f.get("DataType", "")).lower()
        if (data_type == "email" or f.get("SchemaName") == "EmailAddress") and not (
            _EMAIL_RE.fullmatch(value.strip())
        ):
            raise _invalid(f"{where}: {_short(value)} is not a valid email address")
        if data_type in ("number", "decimal", "integer"):
            try:
                ok = math.isfinite(float(value))
            except ValueError:
                ok = False
            if not ok:
                raise _invalid(f"{where}: {_short(value)} is not a number")
        allowed = _allowed_options(f, options_key)
        if allowed is not None and not skip_dropdown and value not in allowed:
            shown = ", ".join(dict.fromkeys(allowed)) or "none"
            raise _invalid(f"{where}: {_short(value)} is not one of its options ({shown})")

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
            if _is_cfs(f):
                if name in sets:
                    for sub in f.get("Fields", []):
                        if sub.get("IsMandatory") and not sets[name].get(sub["SchemaName"], ""):
                            raise _missing(f"Mandatory field {name}.{sub['SchemaName']} is missing")
                continue
            if f.get("IsMandatory") and not attrs.get(name, "").strip():
                raise _missing(f"Mandatory lead field {name} is missing for a new lead")

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

    def _index_for(self, attribute: str) -> dict[str, str]:
        index = self._index.get(attribute)
        if index is None:
            index = {}
            for lead_id, lead in self.leads.items():
                key = self._normalise(attribute, lead.get(attribute))
                if key:
                    index.setdefault(key, lead_id)  # oldest lead wins, like a lookup would
            self._index[attribute] = index
        return index

    def _find_lead(self, attribute: str, value: str) -> str | None:
        key = self._normalise(attribute, value)
        if not key:
            return None
        lead_id = self._index_for(attribute).get(key)
        return lead_id if lead_id in self.leads else None

    def _write_lead(
        self, lead_id: str, attrs: dict[str, str], sets: dict[str, dict[str, str]]
    ) -> None:
        lead = self.leads[lead_id]
        for attribute, index in self._index.items():
            if attribute in attrs:
                old = self._normalise(attribute, lead.get(attribute))
                if old and index.get(old) == lead_id:
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
                if new:
                    index.setdefault(new, lead_id)


# --------------------------------------------------------------------------------------------
# Running it


class SandboxThread:
    """Run a :class:`Sandbox` on its own event loop in a daemon thread, for sync callers.

    ``with SandboxThread(rate=5, per=1.0) as sandbox:`` yields the started sandbox (its
    ``base_url`` is set). Reading ``sandbox.calls``/``activities`` once the client run has
    finished is safe; while requests may still be in flight use :meth:`snapshot`.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **sandbox_kwargs: Any) -> None:
        _check_loopback(host)
        self.sandbox = Sandbox(**sandbox_kwargs)
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.sandbox.start(self._host, self._port))
        except BaseException as exc:  # handed to the caller of __enter__
            self._error = exc
            loop.close()
            self._ready.set()
            return
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def __enter__(self) -> Sandbox:
        if self._thread is not None:
            raise RuntimeError("SandboxThread is not reentrant")
        self._thread = threading.Thread(target=self._run, name="lsq-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("the sandbox did not start within 30 s")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self.sandbox

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server and join the thread. Safe to call twice."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.sandbox.stop(), loop).result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=30)

    def call(self, fn: Callable[[], _T], timeout: float = 30) -> _T:
        """Run ``fn`` on the sandbox's loop, so it sees a consistent state; return its result."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the sandbox is not running")

        async def run() -> _T:
            return fn()

        coro: Coroutine[Any, Any, _T] = run()
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=timeout)

    def snapshot(self) -> dict[str, Any]:
        """Thread-safe :meth:`Sandbox.snapshot`."""
        return self.call(self.sandbox.snapshot)

    def reset(self) -> None:
        """Thread-safe :meth:`Sandbox.reset`."""
        self.call(self.sandbox.reset)


def serve(*, host: str = "127.0.0.1", port: int = 8787, **sandbox_kwargs: Any) -> None:
    """Run a sandbox in the foreground until Ctrl-C (``lsq-import sandbox``).

    Prints one line to stderr, e.g. ``LeadSquared sandbox on http://127.0.0.1:8787 (rate 25
    per 5 s) - Ctrl-C to stop`` (with ``; faults <spec>`` after the rate when faults are on).
    Refuses non-loopback hosts with ConfigError. Example::

        serve(port=8787, rate=10, per=5.0, faults=FaultConfig.from_spec("drop_after=0.05"))
    """
    _check_loopback(host)
    sandbox = Sandbox(**sandbox_kwargs)

    async def main() -> None:
        url = await sandbox.start(host, port)
        faults = sandbox.faults.to_spec()
        print(
            f"LeadSquared sandbox on {url} (rate {sandbox.rate} per {sandbox.per:g} s"
            f"{'; faults ' + faults if faults else ''}) - Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await sandbox.stop()

    # asyncio.run turns Ctrl-C into cancelling main(), which stops the server, then re-raises.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
