"""The sandbox's HTTP face: an aiohttp server on loopback in front of a :class:`SandboxAccount`.

Endpoints (paths match case-insensitively, like IIS/WCF):

- ``POST /v2/ProspectActivity.svc/CreateCustom`` - upsert a lead by its ``SearchBy`` attribute,
  then add one activity to it. 200 ``{"Status": "Success", "Message": {"Id": <activity id>,
  "RelatedId": <lead id>}}``.
- ``GET /v2/ProspectActivity.svc/ActivityTypes.Get`` - ``[{ActivityEvent, ActivityEventName,
  DisplayName}]``.
- ``GET /v2/ProspectActivity.svc/CustomActivity/GetActivitySetting?code=N`` - ``{Name,
  DisplayName, Fields}``; an unknown code is a 500 ``MXInvalidInputException``.
- ``GET /v2/LeadManagement.svc/LeadsMetaData.Get`` - the lead fields of the schema.
- ``GET /v2/LeadManagement.svc/Leads.GetByEmailaddress?emailaddress=...`` - a list of lead
  objects (``ProspectID`` and every lead field; case-insensitive, as the upsert compares),
  ``[]`` for none.
- ``GET /v2/LeadManagement.svc/RetrieveLeadByPhoneNumber?phone=...`` - digits only (else a
  500 ``MXInvalidInputException``): a list of the one lead whose Phone or Mobile has them (the
  one with the latest activity when several do), ``[]`` for none.
- ``POST /v2/LeadManagement.svc/Leads.Get`` - ``{"Parameter": {"LookupName", "LookupValue",
  "SqlOperator": "="}, "Columns": {"Include_CSV"}, "Paging": {"PageIndex", "PageSize"}}``: a
  list of lead objects (only ``=`` is implemented).
- ``POST /v2/ProspectActivity.svc/Retrieve?leadId=...`` - ``{"Parameter": {"ActivityEvent"},
  "Paging": {"Offset", "RowCount"}}`` (both optional; ``Offset`` is a page number from 1, 0
  also the first page): ``{"RecordCount", "ProspectActivities": [{"Id", "EventCode",
  "EventName", "CreatedOn", ..., "Data": [{"Key", "Value"}]}]}``, newest first; ``Data``
  holds the note (``ActivityEvent_Note``), the ``ActivityDateTime`` and the non-empty custom
  fields. With the ``read_lag`` fault, an activity is listed only that many seconds (of
  ``clock()``) after it was created.
- ``POST /v2/LeadManagement.svc/Lead/Bulk/CreateOrUpdate`` - a JSON list of 1 to 25 leads,
  each a list of ``{"Attribute", "Value"[, "Fields"]}`` pairs as in CreateCustom's
  ``LeadDetails`` (custom field sets included); a ``{"Attribute": "SearchBy", ...}`` entry
  names what to find the lead by, else its EmailAddress, else its Phone. Each lead is checked
  and upserted as CreateCustom's, in order, in one step: 200 ``{"Status": "Success",
  "Response": [...]}``, one record per lead in request order, ``{"RowNumber": i, "LeadId",
  "LeadCreated", "LeadUpdated"}`` (``i`` from 1) or ``{"RowNumber": i, "ExceptionType",
  "ExceptionMessage"}`` with the error CreateCustom would give (a partial failure: the others
  are processed). Two leads with one search key in a call are upserted in order (the second
  updates the first) and the call is counted in :attr:`Sandbox.bulk_same_key_calls`.
- ``POST /v2/ProspectActivity.svc/Bulk/CustomActivity/Add/ByLeadField?searchBy=F`` - a JSON
  list of 1 to 25 ``{"SearchByValue", "ActivityEvent", "ActivityNote", "ActivityDateTime",
  "Fields", "ValidateDropDownOptions"}`` (only the first two required): each is added to
  the lead whose field ``F`` (a lead field or ``ProspectId``, any case; the parameter's name
  too) matches ``SearchByValue``, compared as the upsert compares, after CreateCustom's check
  of an ``Activity``: 200 ``{"Status": "Success", "Response": [{"RowNumber": i,
  "ProspectActivityId", "LeadId"} | {"RowNumber": i, "ExceptionType", "ExceptionMessage"}]}``;
  no such lead is a record error (``MXInvalidInputException`` "Lead not found: ..."). The
  read endpoints list these activities (``read_lag`` applies).
- A bulk body that is not JSON, not a list, empty or longer than 25 is a 400
  ``MXInvalidInputException`` for the whole call, and nothing is stored; so is a missing
  ``searchBy`` (an unknown one: 500, like any unknown value).
- ``GET /_sandbox/info`` - ``{"service": "lsq-import sandbox", "well_known_keys": true,
  "limits": {"rate", "per", "bulk_rate", "bulk_per", "bulk_shares_limit"}}`` (no auth, not
  recorded): how the importer recognises a standing sandbox on loopback, whether it takes
  :data:`DEFAULT_ACCESS_KEY`/:data:`DEFAULT_SECRET_KEY` (never the keys), and its limits.
- ``GET /_sandbox/state`` - JSON snapshot of calls, leads, activities, redirected arrivals and
  ``bulk_same_key_calls`` (no auth, not recorded).
- ``POST /_sandbox/reset`` - forget leads, activities and calls (no auth, not recorded).
- ``* /_sandbox/redirected/...`` - where the ``redirect`` fault points: a fake success,
  and a :class:`RedirectedRecord` in :attr:`Sandbox.redirected` (no key is stored).
- Anything else: 404 with a plain-text body, like a real web server; a known ``/v2/`` path with
  the wrong method: 405, plain text.

Each ``/v2/`` request goes through, in order: the uplink half of the simulated latency; arrival
(``clock()`` is read and a :class:`CallRecord` appended to :attr:`Sandbox.calls`); routing
(404/405); authentication (401 ``MXUnAuthorizedAccessException``; keys come from the
``x-LSQ-AccessKey``/``x-LSQ-SecretKey`` headers, or, when neither header is sent, from the
``accessKey``/``secretKey`` query parameters); the rate limiter (429
``MXAPIRateLimitExceededException``, "API calls exceeded the limit of R in P second(s)");
the endpoint itself (the account); the downlink half of the latency. The read endpoints are
metered and limited like any call. Injected faults (:class:`FaultConfig`, CreateCustom and
the two bulk POSTs, one draw per call; ``read_lag`` delays what the reads see) are drawn at
arrival: network faults
(``drop_before``, ``proxy_502``, ``redirect``) answer right after routing, server faults (500s,
``error_200``, throttling, ``echo_headers``, ``echo_encoded``) right after the real limiter
admits the call, ``drop_after`` closes the connection once the call has been processed, and
the garbled answers (``html_200``, ``empty_200``, ``truncated_200``, ``huge_body``,
``nested_200``, ``gzip_bomb``) replace a processed call's success. On a bulk call each
means the same for the whole call (see :class:`FaultConfig`), and the bulk-only
``record_error`` fails single records of a processed call (``MXUnknownException``, "Record
could not be processed (sandbox fault)") while the others go in.
Each :class:`CallRecord` names its fault and the activity it created (a bulk call's: the
records it held, the leads and activities it wrote, its failed rows).

Keys are never echoed in a response (except by the ``echo_headers`` and ``echo_encoded``
faults, which exist to do so), a log line or a call record (records keep the path without
its query string, and the aiohttp access log is off).

Rate limit: a rolling window measured at the server. A call is refused if ``rate`` or more
counted arrivals lie in ``(now - per, now]``. Authenticated calls to known endpoints are
*metered*; with ``count_rejected=True`` (the default, like a real counter) refused calls count
too, so a client that keeps hammering stays locked out. :meth:`Sandbox.max_in_window` reports
the most metered arrivals (accepted or refused) in any window, so ``<= rate`` means the client
never overran the limit.

Bulk calls have a window of their own, ``bulk_rate`` calls per ``bulk_per`` seconds (default
1 per ``per``: the older rate-limits page's figure for every plan). With
``bulk_shares_limit=True`` (the default; LeadSquared does not document it) a bulk call is
admitted only if both its window and the ordinary one have room, and counts in both; with
False only the bulk window counts it. A refusal names the window that refused: "API calls
exceeded the limit of B in P second(s)" for the bulk one (checked first), the ordinary
message otherwise. :meth:`Sandbox.max_bulk_in_window` is :meth:`~Sandbox.max_in_window` for
bulk calls; ``max_in_window`` counts what the ordinary window counted (bulk calls only when
they share it). ``GET /_sandbox/info`` reports the limits under ``limits``.

From the body being read to the answer being decided nothing awaits (unless
``FaultConfig.nonatomic_upsert`` puts a pause into CreateCustom's upsert, to reproduce a racy
one), so the limiter is exact and the account's upsert atomic; a bulk call's records are all
processed in that one step.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import functools
import hmac
import ipaddress
import json
import logging
import math
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

from ..exceptions import ConfigError
from .account import BulkResult, SandboxAccount
from .errors import ApiError, invalid_input
from .faults import (
    GARBLED_ANSWER_FAULTS,
    GZIP_BOMB_BYTES,
    HUGE_BODY_BYTES,
    NESTED_BODY_DEPTH,
    NETWORK_FAULTS,
    FaultConfig,
    FaultDraws,
)
from .schema import SandboxSchema

__all__ = [
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_SECRET_KEY",
    "ECHO_DISGUISES",
    "INFO_PATH",
    "SERVICE",
    "CallRecord",
    "RedirectedRecord",
    "Sandbox",
    "check_loopback",
    "disguised_headers",
]

# The package's name, not this module's: the logger was "importer.sandbox" before the
# package was split, and a user's logging configuration may name it.
log = logging.getLogger("importer.sandbox")

DEFAULT_ACCESS_KEY = "sandbox-access-key"
DEFAULT_SECRET_KEY = "sandbox-secret-key"
INFO_PATH = "/_sandbox/info"
"""Where a sandbox says what it is (see the module docstring)."""
SERVICE = "lsq-import sandbox"
"""The ``service`` an info answer names."""

_CREATE = "/v2/prospectactivity.svc/createcustom"
_ACTIVITY_TYPES = "/v2/prospectactivity.svc/activitytypes.get"
_ACTIVITY_SETTING = "/v2/prospectactivity.svc/customactivity/getactivitysetting"
_LEADS_META = "/v2/leadmanagement.svc/leadsmetadata.get"
_LEADS_BY_EMAIL = "/v2/leadmanagement.svc/leads.getbyemailaddress"
_LEAD_BY_PHONE = "/v2/leadmanagement.svc/retrieveleadbyphonenumber"
_LEADS_GET = "/v2/leadmanagement.svc/leads.get"
_ACTIVITIES = "/v2/prospectactivity.svc/retrieve"
_BULK_LEADS = "/v2/leadmanagement.svc/lead/bulk/createorupdate"
_BULK_ACTIVITIES = "/v2/prospectactivity.svc/bulk/customactivity/add/byleadfield"
_BULK = frozenset({_BULK_LEADS, _BULK_ACTIVITIES})
# The calls that get an injected fault: the ones that write.
_FAULTED = _BULK | {_CREATE}

_REDIRECTED = "/_sandbox/redirected"
# What the redirect target answers: a success with an Id that is no activity, as a server
# that a client should never have reached would (a client that follows records it).
_NOT_AN_ACTIVITY = "not-a-leadsquared-activity"

# html_200's page: what a proxy or web-application firewall may send in place of the answer.
_RECEIVED_PAGE = (
    "<html><head><title>Request received</title></head>"
    "<body><h1>Thank you</h1><p>Your request has been received.</p></body></html>"
)

_RATE_LIMIT_TYPE = "MXAPIRateLimitExceededException"
_BAD_GATEWAY = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)


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

    For a bulk call (``bulk`` True: a path of a bulk endpoint): ``records`` is how many
    items its body's JSON list held (0 if it was no list), ``lead_ids`` the leads it
    created or updated and ``activity_ids`` the activities it created, in request order;
    ``failed_rows`` the RowNumbers (from 1) answered with a record error, and of those
    ``faulted_rows`` the ones the ``record_error`` fault failed.
    """

    arrived: float
    method: str
    path: str
    http_status: int = 0
    exception_type: str = ""
    metered: bool = False
    fault: str = ""
    activity_id: str = ""
    bulk: bool = False
    records: int = 0
    lead_ids: list[str] = dataclasses.field(default_factory=list)
    activity_ids: list[str] = dataclasses.field(default_factory=list)
    failed_rows: list[int] = dataclasses.field(default_factory=list)
    faulted_rows: list[int] = dataclasses.field(default_factory=list)


@dataclass
class RedirectedRecord:
    """One request that arrived at the ``redirect`` fault's target: it should never happen.

    ``carried_keys`` says whether it had either key header or key query parameter (their
    values are never stored); ``body_bytes`` how much body came along (0 after a 302 turned
    the POST into a GET).
    """

    arrived: float
    method: str
    path: str
    carried_keys: bool
    body_bytes: int


ECHO_DISGUISES = ("base64", "urlsafe base64", "hex", "html entities", "json escapes", "split")
"""The disguises of the ``echo_encoded`` fault, in the order the calls get them."""


def disguised_headers(headers: Mapping[str, str], how: str) -> str:
    """The request headers (keys included) echoed as ``how`` (one of :data:`ECHO_DISGUISES`)
    says, as a hostile server might, to get past a client that looks for the keys as they
    are."""
    block = "; ".join(f"{name}: {value}" for name, value in headers.items())
    if how == "base64":
        return base64.b64encode(block.encode()).decode()
    if how == "urlsafe base64":
        return base64.urlsafe_b64encode(block.encode()).decode()
    if how == "hex":
        return block.encode().hex()
    if how == "html entities":
        return "".join(f"&#{ord(c)};" for c in block)
    if how == "json escapes":  # literally backslash-u: the parsed message still holds them
        return "".join(f"\\u{ord(c):04x}" for c in block)
    if how == "split":  # each value cut in two by a line break
        return "; ".join(
            f"{name}: {value[: len(value) // 2]}\n{value[len(value) // 2 :]}"
            for name, value in headers.items()
        )
    raise ValueError(f"unknown disguise {how!r}")


_BOMB_HEAD = b'{"Padding": "'


@functools.cache
def _gzip_padding() -> tuple[bytes, Any]:
    """gzip_bomb's compressed head (``{"Padding": "`` and the padding), and the compressor
    that made it, to be copied for each answer's tail. Made in 1 MiB pieces: the 200 MiB
    are never in memory at once."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: gzip framing
    parts = [packer.compress(_BOMB_HEAD)]
    piece = b"x" * (1024 * 1024)
    left = GZIP_BOMB_BYTES - len(_BOMB_HEAD)
    while left > 0:
        parts.append(packer.compress(piece[:left]))
        left -= len(piece)
    return b"".join(parts), packer


def _gzip_bomb(payload: dict[str, Any]) -> bytes:
    """The gzip of ``{"Padding": "xxx...", <payload's fields>}``: a little more than
    ``GZIP_BOMB_BYTES`` decompressed, the success after the padding, so that only a client
    that decompresses it all sees it."""
    head, packer = _gzip_padding()
    packer = packer.copy()  # the cached one stays at the end of the padding
    tail = ('", ' + json.dumps(payload)[1:]).encode()
    return head + packer.compress(tail) + packer.flush()


def check_loopback(host: str) -> None:
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


class Sandbox:
    """An emulated LeadSquared account served over HTTP on loopback.

    State (``calls``, ``leads``, ``activities``) is plain Python data that tests read directly;
    treat it as read-only and use :meth:`reset` (or ``POST /_sandbox/reset``) to clear it.
    ``account`` is the :class:`SandboxAccount` behind the endpoints; ``draws`` the seeded
    :class:`FaultDraws` that decide each call's latency and fault, public so a test can see
    what a seed draws (a draw taken there is one that the next call does not get).

    ``rate`` calls per ``per`` seconds is the ordinary limit; bulk calls have their own,
    ``bulk_rate`` per ``bulk_per`` seconds (None: ``per``), and with ``bulk_shares_limit``
    (the default; LeadSquared does not say) a bulk call also needs room in the ordinary
    window and takes its place there. ``bulk_same_key_calls`` counts the bulk lead calls that
    had two leads with the same search key (a client should never send that: which of the two
    wins is the server's business).
    """

    def __init__(
        self,
        *,
        access_key: str = DEFAULT_ACCESS_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        rate: int = 25,
        per: float = 5.0,
        bulk_rate: int = 1,
        bulk_per: float | None = None,
        bulk_shares_limit: bool = True,
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
        if not isinstance(bulk_rate, int) or isinstance(bulk_rate, bool) or bulk_rate < 1:
            raise ConfigError(
                f"sandbox bulk_rate must be a whole number of calls >= 1, not {bulk_rate!r}"
            )
        if bulk_per is not None and not (
            isinstance(bulk_per, int | float) and math.isfinite(bulk_per) and bulk_per > 0
        ):
            raise ConfigError(
                f"sandbox window 'bulk_per' must be a positive number of seconds, not {bulk_per!r}"
            )
        if not isinstance(bulk_shares_limit, bool):
            raise ConfigError(
                f"sandbox bulk_shares_limit must be true or false, not {bulk_shares_limit!r}"
            )
        if not access_key or not secret_key:
            raise ConfigError("sandbox access key and secret key must not be empty")
        self._access_key = access_key.encode()
        self._secret_key = secret_key.encode()
        self.rate = rate
        self.per = float(per)
        self.bulk_rate = bulk_rate
        self.bulk_per = float(per if bulk_per is None else bulk_per)
        self.bulk_shares_limit = bulk_shares_limit
        self.bulk_same_key_calls = 0
        self.account = SandboxAccount(schema, clock=clock)
        self.faults = faults if faults is not None else FaultConfig()
        self.faults.validate()
        self.count_rejected = count_rejected
        self._clock = clock
        self.draws = FaultDraws(self.faults)

        self.calls: list[CallRecord] = []
        self.redirected: list[RedirectedRecord] = []
        self._echoes_encoded = 0  # echo_encoded's disguises go in turn
        self.base_url = ""
        self._in_flight = 0

        self._window: deque[float] = deque()  # counted arrivals, oldest first
        self._bulk_window: deque[float] = deque()  # counted bulk arrivals, oldest first
        self._routes: dict[str, tuple[str, Callable[[web.Request, bytes], Any]]] = {
            _CREATE: ("POST", self._create_custom),
            _ACTIVITY_TYPES: ("GET", self._get_activity_types),
            _ACTIVITY_SETTING: ("GET", self._get_activity_setting),
            _LEADS_META: ("GET", self._get_leads_metadata),
            _LEADS_BY_EMAIL: ("GET", self._get_leads_by_email),
            _LEAD_BY_PHONE: ("GET", self._get_lead_by_phone),
            _LEADS_GET: ("POST", self._leads_get),
            _ACTIVITIES: ("POST", self._retrieve_activities),
            _BULK_LEADS: ("POST", self._bulk_leads),
            _BULK_ACTIVITIES: ("POST", self._bulk_activities),
        }

        self.app = web.Application()
        self.app.router.add_get(INFO_PATH, self._handle_info)
        self.app.router.add_get("/_sandbox/state", self._handle_state)
        self.app.router.add_post("/_sandbox/reset", self._handle_reset)
        self.app.router.add_route("*", _REDIRECTED + "/{tail:.*}", self._handle_redirected)
        self.app.router.add_route("*", "/{tail:[vV]2/.*}", self._handle_v2)
        self._runner: web.AppRunner | None = None

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 picks a free port); return and set :attr:`base_url`."""
        check_loopback(host)
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

    @property
    def schema(self) -> SandboxSchema:
        """The account's schema, normalised (defaults filled in)."""
        return self.account.schema

    @property
    def leads(self) -> dict[str, dict[str, Any]]:
        """The account's leads: lead id -> attributes (see :class:`SandboxAccount`)."""
        return self.account.leads

    @property
    def activities(self) -> list[dict[str, Any]]:
        """The account's activities, in creation order."""
        return self.account.activities

    def arrivals(self, path_suffix: str = "CreateCustom") -> list[float]:
        """Arrival times of the calls whose path ends with ``path_suffix`` (any status),
        e.g. ``"Lead/Bulk/CreateOrUpdate"``."""
        suffix = path_suffix.lower()
        return [c.arrived for c in self.calls if c.path.lower().endswith(suffix)]

    def bulk_arrivals(self) -> list[float]:
        """Arrival times of the calls to either bulk endpoint (any status)."""
        return [c.arrived for c in self.calls if c.bulk]

    def bulk_calls(self) -> list[CallRecord]:
        """The records of the calls to either bulk endpoint, in arrival order."""
        return [c for c in self.calls if c.bulk]

    def max_in_window(self, per: float | None = None) -> int:
        """The most metered arrivals (accepted or refused) that the ordinary window counted
        in any window ``(t - per, t]``: every metered call but, unless ``bulk_shares_limit``,
        the bulk ones.

        ``<= rate`` means the client never overran the limit at the server.
        """
        return _most_in_window(
            [c.arrived for c in self.calls if c.metered and (self.bulk_shares_limit or not c.bulk)],
            self.per if per is None else per,
        )

    def max_bulk_in_window(self, per: float | None = None) -> int:
        """The most metered bulk arrivals (accepted or refused) in any window ``(t - per, t]``
        (``per`` defaults to ``bulk_per``): ``<= bulk_rate`` means the client never overran
        the bulk limit."""
        return _most_in_window(
            [c.arrived for c in self.calls if c.metered and c.bulk],
            self.bulk_per if per is None else per,
        )

    def duplicate_leads(self) -> int:
        """How many leads share a SearchBy value with another lead (0 unless an upsert raced).

        Compared per attribute that calls have searched by, normalised as the lookup does.
        """
        return self.account.duplicate_leads()

    @property
    def in_flight(self) -> int:
        """Requests being handled plus client connections still open.

        0 means quiet: nothing more will land unless a client sends again. A test waits for it
        after killing a client, since the server finishes requests whose client has gone.
        """
        server = self._runner.server if self._runner is not None else None
        return self._in_flight + (len(server.connections) if server is not None else 0)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able deep copy of ``calls``, ``leads``, ``activities``, ``redirected`` and
        ``bulk_same_key_calls``."""
        return {
            "calls": [dataclasses.asdict(c) for c in self.calls],
            "leads": copy.deepcopy(self.leads),
            "activities": copy.deepcopy(self.activities),
            "redirected": [dataclasses.asdict(r) for r in self.redirected],
            "bulk_same_key_calls": self.bulk_same_key_calls,
        }

    def limits(self) -> dict[str, Any]:
        """The rate limits, as ``GET /_sandbox/info`` reports them."""
        return {
            "rate": self.rate,
            "per": self.per,
            "bulk_rate": self.bulk_rate,
            "bulk_per": self.bulk_per,
            "bulk_shares_limit": self.bulk_shares_limit,
        }

    def reset(self) -> None:
        """Forget leads, activities, calls, redirected arrivals, the same-key count and the
        rate-limit windows."""
        self.calls.clear()
        self.redirected.clear()
        self.account.reset()
        self._window.clear()
        self._bulk_window.clear()
        self.bulk_same_key_calls = 0

    # ---- helpers endpoints ------------------------------------------------------------------

    async def _handle_info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"service": SERVICE, "well_known_keys": self.well_known_keys, "limits": self.limits()}
        )

    @property
    def well_known_keys(self) -> bool:
        """Whether this sandbox takes the documented default keys (nobody gave it others)."""
        return (self._access_key, self._secret_key) == (
            DEFAULT_ACCESS_KEY.encode(),
            DEFAULT_SECRET_KEY.encode(),
        )

    async def _handle_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def _handle_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"Status": "Success"})

    async def _handle_redirected(self, request: web.Request) -> web.Response:
        body = await request.read()
        names = ("x-LSQ-AccessKey", "x-LSQ-SecretKey")
        carried = any(name in request.headers for name in names) or any(
            name in request.query for name in ("accessKey", "secretKey")
        )
        self.redirected.append(
            RedirectedRecord(self._clock(), request.method, request.path, carried, len(body))
        )
        return web.json_response({"Status": "Success", "Message": {"Id": _NOT_AN_ACTIVITY}})

    def _redirect(self, request: web.Request) -> web.Response:
        """The ``redirect`` fault: 302 to this path on the other loopback name."""
        url = request.url
        other = "127.0.0.1" if url.host == "localhost" else "localhost"
        target = url.with_host(other).with_path(_REDIRECTED + request.path).with_query(None)
        return web.Response(
            status=302,
            headers={"Location": str(target)},
            text="<html><body>Object moved</body></html>",
            content_type="text/html",
        )

    # ---- /v2/ -------------------------------------------------------------------------------

    async def _handle_v2(self, request: web.Request) -> web.StreamResponse:
        # The body is part of the uplink: read it before the arrival is stamped, so everything
        # from arrival to the decision runs without an await (atomic upsert, exact limiter),
        # unless FaultConfig.nonatomic_upsert asks for the race.
        self._in_flight += 1
        try:
            body = await request.read()
            up, down = self.draws.latency_halves()
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
        """One draw per arriving CreateCustom or bulk POST when faults are on (see
        FaultConfig)."""
        if request.method != "POST" or request.path.lower().rstrip("/") not in _FAULTED:
            return ""
        return self.draws.fault()

    def _throttled(self, status: int, *, bulk: bool = False) -> ApiError:
        """The rate-limit answer naming the ordinary limit, or with ``bulk`` the bulk one."""
        rate, per = (self.bulk_rate, self.bulk_per) if bulk else (self.rate, self.per)
        return ApiError(
            status, _RATE_LIMIT_TYPE, f"API calls exceeded the limit of {rate} in {per:g} second(s)"
        )

    def _server_fault(
        self, fault: str, headers: Mapping[str, str], *, bulk: bool = False
    ) -> web.Response | None:
        """The answer of an injected server-side fault, or None to process the call."""
        if fault == "error_500_plain":
            # Both shapes seen in the wild: an IIS page, and an envelope without a type.
            if self.draws.coin():
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
            raise invalid_input("Something went wrong (sandbox fault)")
        if fault == "error_200":
            raise invalid_input("Something went wrong (sandbox fault)", 200)
        if fault == "echo_headers":
            raise invalid_input(
                "Invalid request (sandbox fault); request headers: "
                + "; ".join(f"{name}: {value}" for name, value in headers.items())
            )
        if fault == "echo_encoded":
            how = ECHO_DISGUISES[self._echoes_encoded % len(ECHO_DISGUISES)]
            self._echoes_encoded += 1
            raise invalid_input(
                f"Invalid request (sandbox fault); request headers ({how}): "
                + disguised_headers(headers, how)
            )
        if fault.startswith("throttle_"):
            raise self._throttled(int(fault.removeprefix("throttle_")), bulk=bulk)
        return None

    async def _dispatch(
        self, request: web.Request, body: bytes, record: CallRecord, fault: str
    ) -> web.Response:
        route = self._routes.get(request.path.lower().rstrip("/"))
        if route is None:
            return web.Response(status=404, text="404: Not Found")
        method, handler = route
        record.bulk = request.path.lower().rstrip("/") in _BULK
        if request.method != method:
            return web.Response(status=405, text="405: Method Not Allowed")
        if record.bulk:
            record.records = _records_in(body)
        if fault in NETWORK_FAULTS:
            record.fault = fault
        if fault == "drop_before":
            return web.Response(status=500)  # never sent: _handle_v2 closes the connection
        if fault == "proxy_502":
            return web.Response(status=502, text=_BAD_GATEWAY, content_type="text/html")
        if fault == "redirect":
            return self._redirect(request)
        try:
            if not self._authorized(request):
                raise ApiError(
                    401,
                    "MXUnAuthorizedAccessException",
                    "Invalid access key or secret key, or keys of another region's account",
                )
            record.metered = True
            refused = self._admit(record.arrived, bulk=record.bulk)
            if refused is not None:
                raise self._throttled(429, bulk=refused == "bulk")
            if fault and fault not in NETWORK_FAULTS:
                record.fault = fault
                injected = self._server_fault(fault, request.headers, bulk=record.bulk)
                if injected is not None:
                    return injected
            if handler == self._create_custom and self.faults.nonatomic_upsert:
                payload = await self._create_custom_racy(request, body)
            else:
                payload = handler(request, body)
        except ApiError as err:
            record.exception_type = err.exception_type
            return web.json_response(err.envelope(), status=err.status)
        if isinstance(payload, BulkResult):
            record.lead_ids = payload.lead_ids
            record.activity_ids = payload.activity_ids
            record.failed_rows = payload.failed_rows
            record.faulted_rows = payload.faulted_rows
            if payload.same_key:
                self.bulk_same_key_calls += 1
            payload = payload.payload
        elif handler == self._create_custom:
            record.activity_id = payload["Message"]["Id"]
        if fault in GARBLED_ANSWER_FAULTS:  # drawn for CreateCustom and bulk calls only
            return self._garbled(fault, payload)
        return web.json_response(payload)

    @staticmethod
    def _garbled(fault: str, payload: dict[str, Any]) -> web.Response:
        """A processed call's success answer, replaced as the fault says (see FaultConfig)."""
        if fault == "html_200":
            return web.Response(status=200, text=_RECEIVED_PAGE, content_type="text/html")
        if fault == "empty_200":
            return web.Response(status=200, content_type="application/json")
        if fault == "huge_body":
            head = json.dumps({**payload, "Padding": ""})[:-2]  # open the Padding string
            padding = "x" * (HUGE_BODY_BYTES - len(head) - 2)
            response = web.Response(
                status=200, text=head + padding + '"}', content_type="application/json"
            )
            response.enable_chunked_encoding()  # no Content-Length: the client must count
            return response
        if fault == "gzip_bomb":
            return web.Response(
                status=200,
                body=_gzip_bomb(payload),
                content_type="application/json",
                headers={"Content-Encoding": "gzip"},  # already compressed: sent as it is
            )
        if fault == "nested_200":
            head = json.dumps({**payload, "Padding": None})[: -len("null}")]
            nested = "[" * NESTED_BODY_DEPTH + "]" * NESTED_BODY_DEPTH
            return web.Response(
                status=200, text=head + nested + "}", content_type="application/json"
            )
        text = json.dumps(payload)  # truncated_200
        return web.Response(
            status=200, text=text[: len(text) // 2], content_type="application/json"
        )

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

    def _admit(self, now: float, *, bulk: bool = False) -> str | None:
        """Rolling windows: None to admit the call, else which window refused it ("bulk",
        checked first, or "ordinary").

        A window refuses if its rate or more counted arrivals lie in ``(now - per, now]``.
        An ordinary call is counted in the ordinary window; a bulk call in the bulk window
        and, with ``bulk_shares_limit``, the ordinary one too, and needs room in each. A
        refused call counts in the same windows when ``count_rejected``.
        """
        windows: list[tuple[str, deque[float], int, float]] = []
        if bulk:
            windows.append(("bulk", self._bulk_window, self.bulk_rate, self.bulk_per))
        if not bulk or self.bulk_shares_limit:
            windows.append(("ordinary", self._window, self.rate, self.per))
        refused: str | None = None
        for name, window, rate, per in windows:
            cutoff = now - per
            while window and window[0] <= cutoff:
                window.popleft()
            if refused is None and len(window) >= rate:
                refused = name
        if refused is None or self.count_rejected:
            for _, window, _, _ in windows:
                window.append(now)
        return refused

    # ---- endpoints: the account answers -----------------------------------------------------

    def _create_custom(self, request: web.Request, body: bytes) -> dict[str, Any]:
        return self.account.create_custom(request.content_type, body)

    async def _create_custom_racy(self, request: web.Request, body: bytes) -> dict[str, Any]:
        """FaultConfig.nonatomic_upsert: lookup, pause, insert, as a racy upsert would."""
        call = self.account.parse_create(request.content_type, body)
        lead_id = self.account.lookup(call)
        await asyncio.sleep(self.faults.upsert_pause)
        return self.account.store(call, lead_id)

    def _bulk_leads(self, request: web.Request, body: bytes) -> BulkResult:
        return self.account.bulk_create_or_update(
            request.content_type, body, record_fault=self.draws.record_fault
        )

    def _bulk_activities(self, request: web.Request, body: bytes) -> BulkResult:
        return self.account.bulk_add_activities(
            _query(request, "searchBy"),
            request.content_type,
            body,
            record_fault=self.draws.record_fault,
        )

    def _get_activity_types(self, request: web.Request, body: bytes) -> list[dict[str, Any]]:
        return self.account.get_activity_types()

    def _get_activity_setting(self, request: web.Request, body: bytes) -> dict[str, Any]:
        return self.account.get_activity_setting(request.query.get("code", ""))

    def _get_leads_metadata(self, request: web.Request, body: bytes) -> list[dict[str, Any]]:
        return self.account.get_leads_metadata()

    def _get_leads_by_email(self, request: web.Request, body: bytes) -> list[dict[str, Any]]:
        return self.account.leads_by_email(_query(request, "emailaddress"))

    def _get_lead_by_phone(self, request: web.Request, body: bytes) -> list[dict[str, Any]]:
        return self.account.leads_by_phone(_query(request, "phone"))

    def _leads_get(self, request: web.Request, body: bytes) -> list[dict[str, Any]]:
        return self.account.leads_get(request.content_type, body)

    def _retrieve_activities(self, request: web.Request, body: bytes) -> dict[str, Any]:
        # read_lag: what was created in the last read_lag seconds is not listed yet.
        visible_until = self._clock() - self.faults.read_lag
        return self.account.retrieve_activities(
            _query(request, "leadId"), request.content_type, body, visible_until=visible_until
        )


def _most_in_window(arrivals: list[float], width: float) -> int:
    """The most of ``arrivals`` in any window ``(t - width, t]``."""
    times = sorted(arrivals)
    best = 0
    lo = 0
    for hi, t in enumerate(times):
        while times[lo] <= t - width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _records_in(body: bytes) -> int:
    """How many items a bulk call's body holds: its JSON list's length, 0 if it is none."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return 0
    return len(payload) if isinstance(payload, list) else 0


def _query(request: web.Request, name: str) -> str | None:
    """A query parameter by its name in any case (IIS/WCF ignore the case of names)."""
    wanted = name.lower()
    return next((v for k, v in request.query.items() if k.lower() == wanted), None)
