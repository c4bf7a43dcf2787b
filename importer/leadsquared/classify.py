"""Error classes: what one API answer (or a failed connection) means for the row and the run.

The fact sheet (``leadsquared-api.md``, "Errors") lists the variants seen in the wild; LeadSquared
does not keep to HTTP semantics (errors with HTTP 200, the rate limit as 403, application errors
as 500), so the class depends on the status *and* the body. The rules are one ordered table,
first match wins, so the whole policy can be read in one place.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

RATE_LIMIT_TYPE = "MXAPIRateLimitExceededException"
_RATE_LIMIT_TEXT = re.compile(r"exceeded the limit", re.IGNORECASE)
# "API calls exceeded the limit of 25 in 5 second(s)": the count may carry thousands commas
# or a word ("of 25 calls in"), the window decimals ("in 1.5 seconds", "in .5 sec").
_LIMIT_TEXT = re.compile(
    r"\blimit\s+of\s+(\d{1,3}(?:,\d{3})+|\d+)\s+(?:[a-z]+\s+){0,2}?in\s+(\d+(?:\.\d+)?|\.\d+)"
    r"\s*sec(?:ond)?s?\b",
    re.IGNORECASE,
)


def limit_in(text: str) -> tuple[int, float] | None:
    """The limit a refusal names, ``(calls, seconds)``: ``(25, 5.0)`` for "API calls exceeded
    the limit of 25 in 5 second(s)"; None when ``text`` names none (or an impossible one: no
    calls, or a window that is not a positive finite number of seconds).

    LeadSquared sends no quota headers, and the limit differs by plan; the refusal's text is
    the only place the account's real limit is ever stated (see
    :meth:`importer.sending.pacer.Pacer.learn`)."""
    found = _LIMIT_TEXT.search(text or "")
    if found is None:
        return None
    calls = int(found.group(1).replace(",", ""))
    seconds = float(found.group(2))
    if calls < 1 or not (math.isfinite(seconds) and seconds > 0):
        return None
    return calls, seconds


class Kind(enum.Enum):
    """How the pool treats an answer."""

    SUCCESS = "success"
    """HTTP 200 and ``Status: Success``: the activity exists."""
    PERMANENT = "permanent"
    """The row is wrong (bad value, duplicate, missing field): retrying won't help."""
    RATE_LIMITED = "rate_limited"
    """Too many calls: not processed. Slow every worker down, then retry."""
    TRANSIENT = "transient"
    """The server answered with a failure that says nothing about the row: retry."""
    AMBIGUOUS = "ambiguous"
    """The request may have been processed but no readable answer came back (a lost
    connection, or a 2xx whose body is not LeadSquared's success): retrying could create a
    second activity, so the row ends ``unknown`` rather than being sent again."""
    FATAL = "fatal"
    """Bad keys, wrong regional host or path: no row can succeed. Stop the run."""


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """An HTTP answer as the client saw it."""

    status: int
    body: Any  # parsed JSON, or None when the body was not JSON
    text: str = ""  # the raw body, shortened, for messages about non-JSON answers
    location: str = ""  # where a 3xx answer pointed (absolute URL; never followed)
    method: str = ""  # the request's method; "" (unknown) counts as not safe to repeat


@dataclass(frozen=True, slots=True)
class Outcome:
    """The classified result of one attempt."""

    kind: Kind
    http_status: int | None = None
    activity_id: str = ""
    lead_id: str = ""
    error_type: str = ""
    error_message: str = ""
    redirect_to: str = ""
    """Where a 3xx answer pointed, shortened for messages (see :func:`shown_url`)."""


def _envelope(body: Any) -> tuple[str, str, str]:
    """(Status, ExceptionType, ExceptionMessage) of a LeadSquared JSON body, "" where absent."""
    if not isinstance(body, dict):
        return "", "", ""
    message = body.get("ExceptionMessage")
    if not message and isinstance(body.get("Message"), str):
        message = body["Message"]  # some error answers put the text in Message
    return str(body.get("Status") or ""), str(body.get("ExceptionType") or ""), str(message or "")


def _is_rate_limited(resp: ApiResponse) -> bool:
    _, etype, message = _envelope(resp.body)
    return (
        resp.status == 429
        or etype == RATE_LIMIT_TYPE
        or bool(_RATE_LIMIT_TEXT.search(message))
        or (resp.body is None and bool(_RATE_LIMIT_TEXT.search(resp.text)))
    )


MAX_ID = 100
"""The longest ``Message.Id`` taken as an activity Id (LeadSquared's are 36-character GUIDs)."""


def _activity_id(body: Any) -> str:
    """``Message.Id`` of a success body when it can be an Id (a non-empty string of at most
    :data:`MAX_ID` printable characters), else ""."""
    msg = body.get("Message") if isinstance(body, dict) else None
    found = msg.get("Id") if isinstance(msg, dict) else None
    if not isinstance(found, str) or not found.strip() or len(found) > MAX_ID:
        return ""
    return found if found.isprintable() and found.isascii() else ""


def _is_success(resp: ApiResponse) -> bool:
    status, _, _ = _envelope(resp.body)
    return resp.status == 200 and status.lower() == "success" and bool(_activity_id(resp.body))


def _is_2xx(resp: ApiResponse) -> bool:
    return 200 <= resp.status < 300


def _is_safe_to_repeat(resp: ApiResponse) -> bool:
    return resp.method.upper() in ("GET", "HEAD")


def _unreadable(resp: ApiResponse) -> str:
    """What is wrong with a 2xx body that is not a usable answer (for messages)."""
    body = resp.body
    if body is None:
        text = resp.text.strip()
        if not text:
            return "an empty body"
        if text[0] in "{[":
            return "JSON that does not parse (cut short, or nested too deeply?)"
        return f"a body that is not JSON: {' '.join(text.split())[:80]}"
    if not isinstance(body, dict):
        return f"a JSON {type(body).__name__}, not LeadSquared's answer object"
    status, _, _ = _envelope(body)
    if status.lower() == "success":
        if _activity_id(body):
            return f"a body that says Success (activity {_activity_id(body)})"
        return "Status Success but no activity Id (Message.Id missing, not a string or not an Id)"
    return f"an answer without a known Status ({status or 'none'})"


def _has_mx_type(resp: ApiResponse) -> bool:
    return _envelope(resp.body)[1].startswith("MX")


Rule = tuple[str, Callable[[ApiResponse], bool], Kind]


def _is_redirect(resp: ApiResponse) -> bool:
    return 300 <= resp.status < 400


# Order matters: the first rule that matches decides.
RULES: tuple[Rule, ...] = (
    (
        # Never followed (the keys would go along); the host answering them is not the API
        # host it was configured as, so no row can succeed: a configuration error.
        "3xx: a redirect (--host is not the API host, or something in between redirects)",
        _is_redirect,
        Kind.FATAL,
    ),
    (
        "rate limit (429, or any status with the MX rate-limit body)",
        _is_rate_limited,
        Kind.RATE_LIMITED,
    ),
    ("HTTP 200 with Status Success and an activity Id", _is_success, Kind.SUCCESS),
    ("401: bad keys or wrong regional host", lambda r: r.status == 401, Kind.FATAL),
    ("404: bad host or path", lambda r: r.status == 404, Kind.FATAL),
    ("400: bad request body", lambda r: r.status == 400, Kind.PERMANENT),
    (
        "any status with an MX exception type (500 + MXInvalidInputException, 200 + Error)",
        _has_mx_type,
        Kind.PERMANENT,
    ),
    (
        "HTTP 2xx with Status Error and no type",
        lambda r: _is_2xx(r) and _envelope(r.body)[0].lower() == "error",
        Kind.PERMANENT,
    ),
    (
        # The body says the activity was created although the status says otherwise (a 500
        # from a proxy after the backend answered, a 201): sending it again could post it twice.
        "any other status whose body says Success, to a call not safe to repeat (a POST)",
        lambda r: not _is_safe_to_repeat(r) and _envelope(r.body)[0].lower() == "success",
        Kind.AMBIGUOUS,
    ),
    (
        # The server took the call and said "OK" in a way we cannot read (an HTML page, an
        # empty or truncated body, a list, a success without an Id): it may well have created
        # the activity, so sending it again could make a second one. A GET is safe to repeat
        # and falls through to the next rule.
        "HTTP 2xx that is not a readable answer, to a call not safe to repeat (a POST)",
        lambda r: _is_2xx(r) and not _is_safe_to_repeat(r),
        Kind.AMBIGUOUS,
    ),
    (
        "5xx without an MX body, non-JSON bodies (proxies), a GET's unreadable 2xx",
        lambda r: True,
        Kind.TRANSIENT,
    ),
)


def classify(resp: ApiResponse) -> Outcome:
    """Classify one HTTP answer of CreateCustom (or a metadata call)."""
    _, etype, message = _envelope(resp.body)
    kind = next(k for _, matches, k in RULES if matches(resp))
    if kind is Kind.SUCCESS:
        msg = resp.body["Message"]  # a dict with a string Id: _is_success checked it
        lead_id = next(
            (v for v in (msg.get("RelatedId"), msg.get("LeadId")) if isinstance(v, str) and v),
            "",
        )
        return Outcome(kind, resp.status, activity_id=_activity_id(resp.body), lead_id=lead_id)
    if kind is Kind.AMBIGUOUS:
        return Outcome(
            kind,
            resp.status,
            error_type=etype,
            error_message=(
                f"HTTP {resp.status} with {_unreadable(resp)}; the call may have been "
                "processed, so it is not sent again"
            ),
        )
    if kind is Kind.FATAL and _is_redirect(resp):
        shown = shown_url(resp.location) or "nowhere (no Location)"
        return Outcome(
            kind,
            resp.status,
            error_type=etype,
            error_message=f"HTTP {resp.status} redirecting to {shown}: not followed",
            redirect_to=shown_url(resp.location),
        )
    if not message and resp.body is None:
        text = " ".join(resp.text.split())[:200]
        message = f"HTTP {resp.status}: {text}" if text else f"HTTP {resp.status}"
    return Outcome(kind, resp.status, error_type=etype, error_message=message)


def shown_url(url: str, limit: int = 200) -> str:
    """``url`` for a one-line message: scheme, host, port and path (no user info, query or
    fragment: they may hold anything the other server likes), whitespace folded, shortened."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        parts, host, port = None, "", None
    if parts is not None and parts.scheme and host:
        host = f"[{host}]" if ":" in host else host
        url = f"{parts.scheme}://{host}{f':{port}' if port else ''}{parts.path}"
    url = " ".join(url.split())
    return url if len(url) <= limit else url[: limit - 3] + "..."


def transport_outcome(exc: BaseException, *, maybe_sent: bool) -> Outcome:
    """Classify a failure without an HTTP answer.

    ``maybe_sent`` is False only when the request provably never left (the connection could
    not be made); then a retry is safe. Otherwise the server may have acted on it.
    """
    return lost_outcome(type(exc).__name__, str(exc), maybe_sent=maybe_sent)


def lost_outcome(name: str, detail: str, *, maybe_sent: bool) -> Outcome:
    """:func:`transport_outcome` from an exception's class name and (scrubbed) text, as the
    client's ``TransportError`` gives them.

    The name goes into ``error_type`` only: every output that shows both (the summary, the
    report, the debug log) puts it in front of the message, so repeating it there read
    ``AnswerTooLarge: AnswerTooLarge: ...``."""
    text = " ".join(detail.split())[:200]
    if not text:  # e.g. a bare TimeoutError
        text = "no answer; the call may have been processed" if maybe_sent else "no connection"
    return Outcome(
        Kind.AMBIGUOUS if maybe_sent else Kind.TRANSIENT,
        None,
        error_type=name,
        error_message=text,
    )


class ReadAnswer(NamedTuple):
    """What an answer to a call that changes nothing (metadata, a lookup) means."""

    kind: Kind
    problem: str
    """A one-line description of a failure ("" for a success), for messages."""
    body: Any
    status: int | None


def classify_read(answer: ApiResponse) -> ReadAnswer:
    """Classify the answer to a call that changes nothing: a metadata GET or a lookup.

    Such answers are bare JSON (a list or an object), not CreateCustom's envelope: an HTTP
    200 with a JSON body that is not an error envelope is a success, whatever its shape (the
    caller checks the shape). Everything else goes through :func:`classify`, with one
    difference: an answer that would leave a CreateCustom ``AMBIGUOUS`` (a POST's unreadable
    2xx) is ``TRANSIENT`` here, since asking again cannot create anything.
    """
    body = answer.body
    is_error = isinstance(body, dict) and str(body.get("Status", "")).lower() == "error"
    if answer.status == 200 and body is not None and not is_error:
        return ReadAnswer(Kind.SUCCESS, "", body, answer.status)
    outcome = classify(answer)  # never SUCCESS: that needs a 200 with a body, taken above
    kind = Kind.TRANSIENT if outcome.kind is Kind.AMBIGUOUS else outcome.kind
    what = " ".join(part for part in (outcome.error_type, outcome.error_message) if part)
    problem = f"answered HTTP {answer.status}{': ' + what if what else ''}"
    return ReadAnswer(kind, problem, body, answer.status)


def read_unanswered(exc: BaseException) -> ReadAnswer:
    """A call that changes nothing got no answer (the client's ``TransportError``, whose text
    has the keys hidden): worth asking again, whether or not it reached the server."""
    return ReadAnswer(Kind.TRANSIENT, f"gave no answer ({exc})", None, None)
