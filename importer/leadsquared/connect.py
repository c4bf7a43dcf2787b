"""Connecting: where calls go (a regional host with keys, or a throwaway sandbox) and the
client that sends them. The run and the preflight/metadata commands connect through here.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..exceptions import ConfigError
from ..settings import (
    ENV_ACCESS_KEY,
    ENV_HOST,
    ENV_SECRET_KEY,
    Credentials,
    base_url,
    check_sandbox_schema,
    credentials_from_env,
    env_file_exposure,
    read_env_file,
)
from .classify import shown_url
from .client import LeadSquaredClient, make_session

if TYPE_CHECKING:
    from ..sandbox.schema import SandboxSchema

logger = logging.getLogger("lsq_import")


@dataclass(frozen=True)
class Endpoint:
    """A base URL and the keys for it; ``url`` None means a throwaway local sandbox, which
    mirrors ``schema`` when given (else the sandbox's default account)."""

    url: str | None
    credentials: Credentials | None = field(default=None, repr=False)
    schema: SandboxSchema | None = field(default=None, repr=False)

    @property
    def is_sandbox(self) -> bool:
        return self.url is None


def resolve_endpoint(
    *,
    host: str | None = None,
    credentials: Credentials | None = None,
    env_file: str | os.PathLike[str] | None = None,
    sandbox: bool = False,
    sandbox_schema: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Endpoint:
    """The host and keys a run uses, checked before anything is read or sent.

    ``host`` defaults to ``$LSQ_HOST``; ``credentials`` to ``$LSQ_ACCESS_KEY``/
    ``$LSQ_SECRET_KEY``; ``env_file`` (``NAME=value`` lines) overrides the environment.
    ``sandbox_schema``: with ``sandbox``, a schema file (``lsq-import account --output``) the
    throwaway sandbox mirrors. Raises :class:`importer.exceptions.ConfigError` for a bad host,
    missing keys, or a schema file that does not load.
    """
    check_sandbox_schema(sandbox, sandbox_schema)
    if sandbox:
        if sandbox_schema is None:
            return Endpoint(None)
        from ..sandbox.schema import SandboxSchema

        return Endpoint(None, schema=SandboxSchema.from_file(sandbox_schema))
    env = {**(os.environ if environ is None else environ)}
    # An env file others can read is said once: in the refusal's one line if anything here
    # refuses it (a bad line, a bad key or host in it, a key missing), else as a warning.
    exposure = env_file_exposure(env_file) if env_file else ""
    try:
        if env_file:
            env.update(read_env_file(env_file, warn=False))
        url = base_url(host or env.get(ENV_HOST))
        endpoint = Endpoint(url, credentials or _keys_for(url, env))
    except ConfigError as exc:
        if exposure:
            raise ConfigError(f"{exc}; also, {exposure}") from None
        raise
    if exposure:
        logger.warning("%s", exposure)
    return endpoint


def _keys_for(url: str, env: Mapping[str, str]) -> Credentials:
    """The keys in ``env``; with none set and ``url`` a standing lsq-import sandbox on this
    machine that takes its well-known keys (``lsq-import sandbox``), those, said in a warning.

    Only a plain-http loopback URL is asked (:func:`standing_sandbox`), and only when both keys
    are missing: the well-known keys never go to another host, and keys that were given are
    never replaced. The messages for missing keys at a loopback URL say what is there instead
    of suggesting ``--sandbox`` (a throwaway sandbox, not the one the user points at).
    """
    if not _on_this_machine(url):
        return credentials_from_env(env)
    given = [name for name in (ENV_ACCESS_KEY, ENV_SECRET_KEY) if env.get(name, "").strip()]
    if given:
        return credentials_from_env(
            env, hint=f"{given[0]} is set, so the server at {url} needs the other one too"
        )
    found, why = standing_sandbox(url)
    missing = f"{ENV_ACCESS_KEY} and {ENV_SECRET_KEY} not set"
    if found is None:
        port = urlsplit(url).port or 80
        raise ConfigError(
            f"{missing}: no lsq-import sandbox answers at {url} ({why}); start one there with "
            f"'lsq-import sandbox --port {port}', or export the keys of the server it is"
        )
    if not found:
        raise ConfigError(
            f"{missing}: the lsq-import sandbox at {url} was started with its own keys; export "
            "the same ones here"
        )
    from ..sandbox.server import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY

    logger.warning("%s: using the well-known keys of the lsq-import sandbox at %s", missing, url)
    return Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)


SANDBOX_PROBE_TIMEOUT = 2.0
"""Seconds :func:`standing_sandbox` waits for a loopback server's answer."""
_INFO_LIMIT = 4096  # an info answer is one small JSON object


def standing_sandbox(url: str, timeout: float = SANDBOX_PROBE_TIMEOUT) -> tuple[bool | None, str]:
    """Whether ``url`` is a standing lsq-import sandbox on this machine: ``(True, "")`` when it
    takes the well-known keys, ``(False, "")`` when it was given its own, ``(None, why)``
    when it is not one (or not a plain-http loopback URL, or does not answer).

    It asks ``GET /_sandbox/info`` (:data:`importer.sandbox.server.INFO_PATH`), with no key
    and without following a redirect, and reads at most 4 KiB of the answer.
    """
    from ..sandbox.server import INFO_PATH, SERVICE

    if not _on_this_machine(url):
        return None, "not a plain-http loopback address"
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request("GET", parts.path.rstrip("/") + INFO_PATH)
        answer = connection.getresponse()
        body = answer.read(_INFO_LIMIT)
    except ConnectionRefusedError:
        return None, "nothing listens there"
    except (OSError, http.client.HTTPException) as exc:
        return None, f"no answer: {type(exc).__name__}"
    finally:
        connection.close()
    if answer.status != 200:
        return None, f"it answered HTTP {answer.status} for {INFO_PATH}"
    try:
        info = json.loads(body)
    except ValueError:
        info = None
    if not isinstance(info, dict) or info.get("service") != SERVICE:
        return None, f"its answer for {INFO_PATH} is not an lsq-import sandbox's"
    return info.get("well_known_keys") is True, ""


def _on_this_machine(url: str) -> bool:
    """A plain-http URL whose host is a loopback address, or ``localhost`` resolving to
    loopback addresses only: where the sandbox listens, and nowhere else."""
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    try:
        parts.port  # noqa: B018 - a port out of range raises here: not the sandbox's URL
    except ValueError:
        return False
    if parts.scheme != "http":
        return False
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        pass
    if hostname != "localhost":
        return False
    try:
        found = socket.getaddrinfo(hostname, parts.port or 80, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(found) and all(
        ipaddress.ip_address(str(address[4][0]).split("%")[0]).is_loopback for address in found
    )


@asynccontextmanager
async def connect(
    endpoint: Endpoint,
    *,
    timeout: float = 60.0,
    connections: int = 100,
    rate: int = 25,
    per: float = 5.0,
    bulk_rate: int = 1,
    bulk_per: float | None = None,
    bulk_shares_limit: bool = True,
) -> AsyncIterator[LeadSquaredClient]:
    """A client for ``endpoint``; for a sandbox endpoint, a local sandbox (limited to ``rate``
    calls per ``per`` s and ``bulk_rate`` bulk calls per ``bulk_per`` s, None meaning
    ``per``, a bulk call also counted against ``rate`` when ``bulk_shares_limit``; with
    one-off keys, mirroring ``endpoint.schema``) runs until the block ends. The limits only
    shape that sandbox: a host's limits are the account's."""
    async with AsyncExitStack() as stack:
        url, credentials = endpoint.url, endpoint.credentials
        if url is None:
            from ..sandbox import Sandbox  # only --sandbox needs the server side

            credentials = Credentials(secrets.token_hex(16), secrets.token_hex(16))
            box = Sandbox(
                access_key=credentials.access_key,
                secret_key=credentials.secret_key,
                rate=rate,
                per=per,
                bulk_rate=bulk_rate,
                bulk_per=bulk_per,
                bulk_shares_limit=bulk_shares_limit,
                schema=endpoint.schema,
            )
            await stack.enter_async_context(box)
            url = box.base_url
        assert credentials is not None, "a host endpoint always has keys"
        session = await stack.enter_async_context(
            make_session(credentials, timeout=timeout, connections=connections)
        )
        yield LeadSquaredClient(session, url, credentials=credentials)


def refused_message(
    status: int | None, url: str, detail: str = "", *, redirect_to: str = ""
) -> str:
    """The one line for an answer that refuses the whole run (401 keys, 404 path, a 3xx
    redirect to ``redirect_to``, which is never followed)."""
    if status is not None and 300 <= status < 400:
        where = shown_url(redirect_to) or "another address"
        return (
            f"{url} answered HTTP {status} redirecting to {where}: lsq-import never follows "
            "redirects with your keys; check --host (e.g. api-in21.leadsquared.com)"
        )
    said = f"HTTP {status}{' ' + detail if detail else ''}"
    if status == 401:
        return (
            f"LeadSquared refused the keys at {url} ({said}): check LSQ_ACCESS_KEY/"
            "LSQ_SECRET_KEY and that --host is your account's regional host"
        )
    return f"{url} answered {said} for the API path: check --host (e.g. api-in21.leadsquared.com)"
