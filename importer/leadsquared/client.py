"""The HTTP client: one aiohttp session, keys in headers, answers parsed into ApiResponse.

It sends and parses; it does not decide what an answer means (``classify``) nor when to send
(``pacer``) nor whether to retry (``retry``/``pool``).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import aiohttp
from yarl import URL

from .. import __version__
from ..settings import Credentials
from .classify import ApiResponse
from .scrub import WITHHELD, Scrubber

CREATE_PATH = "/v2/ProspectActivity.svc/CreateCustom"
ACTIVITY_TYPES_PATH = "/v2/ProspectActivity.svc/ActivityTypes.Get"
ACTIVITY_SETTING_PATH = "/v2/ProspectActivity.svc/CustomActivity/GetActivitySetting"
LEAD_METADATA_PATH = "/v2/LeadManagement.svc/LeadsMetaData.Get"
# Lookups (importer.leadsquared.lookup): calls that read and change nothing.
LEADS_BY_EMAIL_PATH = "/v2/LeadManagement.svc/Leads.GetByEmailaddress"
LEAD_BY_PHONE_PATH = "/v2/LeadManagement.svc/RetrieveLeadByPhoneNumber"
LEADS_GET_PATH = "/v2/LeadManagement.svc/Leads.Get"
ACTIVITIES_OF_LEAD_PATH = "/v2/ProspectActivity.svc/Retrieve"
# Bulk mode (importer.leadsquared.bulk): up to 25 leads, then up to 25 activities, a call.
BULK_LEADS_PATH = "/v2/LeadManagement.svc/Lead/Bulk/CreateOrUpdate"
BULK_ACTIVITIES_PATH = "/v2/ProspectActivity.svc/Bulk/CustomActivity/Add/ByLeadField"


class TransportError(Exception):
    """No HTTP answer. ``maybe_sent`` is False only if the request provably never left.

    ``name`` is the cause's class name and ``detail`` its text with the keys hidden (an
    exception's text may quote URLs or headers); ``str()`` is ``"name: detail"``. Show those,
    never ``cause`` itself, which is kept as it was raised, for debugging.
    """

    def __init__(
        self, cause: BaseException, *, maybe_sent: bool, scrub: Scrubber | None = None
    ) -> None:
        self.name = type(cause).__name__
        self.detail = scrub.text(str(cause)) if scrub is not None else str(cause)
        super().__init__(f"{self.name}: {self.detail}")
        self.cause = cause
        self.maybe_sent = maybe_sent


KEY_HEADERS = ("x-LSQ-AccessKey", "x-LSQ-SecretKey")
MAX_BODY = 1024 * 1024
"""The most bytes of an answer body read, and the most its compressed bytes are decompressed
to. LeadSquared's answers are a few hundred bytes; a server that sends more is broken or
hostile (unbounded, it could fill the memory: a 200 kB gzip body can expand to 200 MiB), so
a larger body is a transport error."""

ACCEPT_ENCODING = "gzip, deflate"
"""The content codings asked for, and the only ones decoded. The client decompresses answers
itself (aiohttp's automatic decompression is off), so that it can stop at :data:`MAX_BODY`;
it does not ask for ``br`` or ``zstd`` even where aiohttp could decode them."""


MAX_DEPTH = 64
"""The deepest nesting of lists and objects an answer may have. LeadSquared's answers are
three or four levels deep; a deeper one is treated as unreadable, like JSON that does not
parse (json.loads raises RecursionError at about 1,000 levels, and everything that walks the
parsed value, the key scrubbing first, would at a few hundred)."""


class AnswerTooLarge(Exception):
    """An answer body over the cap: not read further."""


def make_session(
    credentials: Credentials, *, timeout: float = 60.0, connections: int = 100
) -> aiohttp.ClientSession:
    """A session carrying the keys as headers (never as query parameters: URLs end up in logs)."""
    return aiohttp.ClientSession(
        headers={
            KEY_HEADERS[0]: credentials.access_key,
            KEY_HEADERS[1]: credentials.secret_key,
            "User-Agent": f"lsq-import/{__version__}",
        },
        timeout=aiohttp.ClientTimeout(total=timeout),
        connector=aiohttp.TCPConnector(limit=connections),
        raise_for_status=False,
    )


class LeadSquaredClient:
    """Calls LeadSquared's API through a session made by :func:`make_session`.

    Redirects are never followed: the session's key headers would go along to whatever host
    ``Location`` names (aiohttp re-sends session headers across hosts, even from https to
    http), and a 302 turns the POST into a GET whose "answer" comes from that other server.
    A 3xx comes back as an :class:`ApiResponse` with its ``location``; ``classify`` makes it
    fatal. :attr:`refused_redirect` keeps the latest target, for the run's one-line message.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        credentials: Credentials | None = None,
        max_body: int = MAX_BODY,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.max_body = max_body
        self.refused_redirect = ""
        # Everything the server says is scrubbed of the keys before anyone sees it (see
        # .scrub). Without ``credentials``, the keys are the ones the session sends.
        secrets = (
            credentials.secrets()
            if credentials is not None
            else tuple(session.headers.get(name, "") for name in KEY_HEADERS)
        )
        self.scrub = Scrubber(secrets)

    async def create_lead_and_activity(self, body: dict[str, Any]) -> ApiResponse:
        """``POST /v2/ProspectActivity.svc/CreateCustom`` with one row's payload."""
        return await self._call("POST", CREATE_PATH, json_body=body)

    async def get(self, path: str, params: dict[str, str] | None = None) -> ApiResponse:
        """A GET (metadata, a lookup); ``params`` go into the query string (never the keys)."""
        return await self._call("GET", path, params=params)

    async def post(self, path: str, body: Any, params: dict[str, str] | None = None) -> ApiResponse:
        """A POST of the JSON ``body`` to ``path`` (a lookup such as ``Leads.Get``), with
        ``params`` in the query string (never the keys). It sends once: whether the call may
        be repeated is the caller's to say (a lookup may; the answer's ``method`` is "POST",
        so :func:`~importer.leadsquared.classify.classify` treats it as not safe to repeat,
        :func:`~importer.leadsquared.classify.classify_read` as safe)."""
        return await self._call("POST", path, json_body=body, params=params)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> ApiResponse:
        # Compact, as the dry run prints a body: what it shows is these very bytes.
        data = (
            None
            if json_body is None
            else json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
        )
        headers = {"Accept-Encoding": ACCEPT_ENCODING}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self.session.request(
                method,
                self.base_url + path,
                data=data,
                params=params,
                headers=headers,
                allow_redirects=False,  # see the class docstring: the keys must not follow
                # aiohttp would decompress before the cap is counted (a gzip bomb): the
                # raw body is read up to the cap, then decompressed up to it (_decoded).
                auto_decompress=False,
            ) as resp:
                raw = await _read_capped(resp, self.max_body)
                raw = _decoded(raw, resp.headers.get("Content-Encoding", ""), self.max_body)
                status = resp.status
                location = _redirect_target(resp, self.scrub) if 300 <= status < 400 else ""
        except aiohttp.ClientConnectorError as exc:
            # The TCP/TLS connection never opened: nothing reached the server.
            raise TransportError(exc, maybe_sent=False, scrub=self.scrub) from None
        except (TimeoutError, aiohttp.ClientError, AnswerTooLarge) as exc:
            # The request went out (for an oversized body, the server even answered): the
            # call may have been processed.
            raise TransportError(exc, maybe_sent=True, scrub=self.scrub) from None
        # The body is parsed as it came and then every string in it scrubbed, so a string
        # that held a key in a disguise is withheld alone, and the envelope (Status, the MX
        # type) still says what the answer was. The raw text is scrubbed on its own, before
        # shortening (so no key is cut in two halves that each escape); withheld whole, it
        # is shown as the scrubbed body instead.
        decoded = raw.decode("utf-8", errors="replace")
        body = self.scrub.value(_parse_json(decoded))
        text = self.scrub.text(decoded)
        if text == WITHHELD and body is not None:
            text = self.scrub.text(json.dumps(body, ensure_ascii=False))
        if location:
            self.refused_redirect = location
        return ApiResponse(status, body, text[:500], location=location, method=method)


def _parse_json(text: str) -> Any:
    """``text`` parsed as JSON, or None when it is empty, not JSON or nested deeper than
    :data:`MAX_DEPTH` (the classify rules say what an unreadable body means)."""
    if not text.strip():
        return None
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if _deeper_than(body, MAX_DEPTH):
        return None
    if "\\ud" in text.lower():  # a \uD800-\uDFFF escape: a lone surrogate may be in it
        body = _without_surrogates(body)
    return body


def _without_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate (``"\\udc80"``: valid JSON, not writable as UTF-8)
    replaced by "?" (at most :data:`MAX_DEPTH` levels: checked before)."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [_without_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists/objects more than ``limit`` levels (no recursion)."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    """The body as it came (still compressed, if it is), or AnswerTooLarge once it is known
    to exceed ``cap`` bytes: from its Content-Length before reading, else while reading
    (chunked)."""
    too_large = f"the answer body is larger than {cap} bytes: not read"
    if resp.content_length is not None and resp.content_length > cap:
        raise AnswerTooLarge(too_large)
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap:
            raise AnswerTooLarge(too_large)
        chunks.append(chunk)
    return b"".join(chunks)


def _decoded(raw: bytes, content_encoding: str, cap: int) -> bytes:
    """``raw`` with its content codings (gzip, deflate) undone, never decompressing past
    ``cap`` bytes: AnswerTooLarge beyond it, ClientPayloadError for a body that does not
    decompress or a coding that was not asked for (both lost answers, as when aiohttp
    decoded)."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    for coding in reversed(codings):  # the coding applied last is undone first
        if coding == "identity":
            continue
        if coding in ("gzip", "x-gzip"):
            wbits = 16 + zlib.MAX_WBITS  # 16+: the gzip header and trailer
        elif coding == "deflate":
            # RFC 9110's deflate is zlib-wrapped; some servers send a raw deflate stream.
            wbits = zlib.MAX_WBITS if _has_zlib_header(raw) else -zlib.MAX_WBITS
        else:
            raise aiohttp.ClientPayloadError(
                f"the answer is in content-encoding {coding!r}, which lsq-import did not ask "
                f"for ({ACCEPT_ENCODING})"
            )
        try:
            # max_length: the output stops there, whatever the input would expand to.
            decoded = zlib.decompressobj(wbits).decompress(raw, cap + 1)
        except zlib.error as exc:
            raise aiohttp.ClientPayloadError(
                f"the answer's {coding} body does not decompress ({exc})"
            ) from None
        if len(decoded) > cap:
            raise AnswerTooLarge(
                f"the answer body is larger than {cap} bytes once decompressed: not read"
            )
        raw = decoded
    return raw


def _has_zlib_header(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


def _redirect_target(resp: aiohttp.ClientResponse, scrub: Scrubber) -> str:
    """Where a 3xx answer points, as an absolute URL in its readable (decoded) form, keys
    hidden; "" when it names nowhere."""
    # Scrubbed as it came and once resolved: resolving re-encodes parts of it, decoding
    # for display may reveal a form the raw header hid.
    location = scrub.text(resp.headers.get("Location", "").strip())
    if not location or location == WITHHELD:  # withheld: not a URL to resolve
        return location
    try:
        return scrub.text(resp.url.join(URL(location)).human_repr())
    except ValueError:  # not a URL at all: show it as it came
        return location
