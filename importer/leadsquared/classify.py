"""Error classes: what one API answer (or a failed connection) means for the row and the run.

The fact sheet (``leadsquared-api.md``, "Errors") lists the variants seen in the wild; LeadSquared
does not keep to HTTP semantics (errors with HTTP 200, the rate limit as 403, application errors
as 500), so the class depends on the status *and* the body. The rules are one ordered table,
first match wins, so the whole policy can be read in one place.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

RATE_LIMIT_TYPE = "MXAPIRateLimitExceededException"
_RATE_LIMIT_TEXT = re.compile(r"exceeded the limit", re.IGNORECASE)


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
    """The request may have been processed but no answer came back: retrying could create a
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


def _is_success(resp: ApiResponse) -> bool:
    status, _, _ = _envelope(resp.body)
    return resp.status == 200 and status.lower() == "success"


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
    ("HTTP 200 with Status Success", _is_success, Kind.SUCCESS),
    ("401: bad keys or wrong regional host", lambda r: r.status == 401, Kind.FATAL),
    ("404: bad host or path", lambda r: r.status == 404, Kind.FATAL),
    ("400: bad request body", lambda r: r.status == 400, Kind.PERMANENT),
    (
        "any status with an MX exception type (500 + MXInvalidInputException, 200 + Error)",
        _has_mx_type,
        Kind.PERMANENT,
    ),
    (
        "HTTP 200 with Status Error and no type",
        lambda r: r.status == 200 and r.body is not None,
        Kind.PERMANENT,
    ),
    ("5xx without an MX body, non-JSON bodies (proxies)", lambda r: True, Kind.TRANSIENT),
)


def classify(resp: ApiResponse) -> Outcome:
    """Classify one HTTP answer of CreateCustom (or a metadata call)."""
    _, etype, message = _envelope(resp.body)
    kind = next(k for _, matches, k in RULES if matches(resp))
    if kind is Kind.SUCCESS:
        msg = resp.body.get("Message") if isinstance(resp.body, dict) else None
        msg = msg if isinstance(msg, dict) else {}
        return Outcome(
            kind,
            resp.status,
            activity_id=str(msg.get("Id") or ""),
            lead_id=str(msg.get("RelatedId") or msg.get("LeadId") or ""),
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
    client's ``TransportError`` gives them."""
    text = " ".join(detail.split())[:200]
    message = f"{name}: {text}" if text else name
    return Outcome(
        Kind.AMBIGUOUS if maybe_sent else Kind.TRANSIENT,
        None,
        error_type=name,
        error_message=message,
    )
