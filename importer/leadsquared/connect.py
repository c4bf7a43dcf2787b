"""Connecting: where calls go (a regional host with keys, or a throwaway sandbox) and the
client that sends them. The run and the preflight/metadata commands connect through here.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..exceptions import ConfigError
from ..settings import (
    ENV_HOST,
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
        endpoint = Endpoint(
            base_url(host or env.get(ENV_HOST)), credentials or credentials_from_env(env)
        )
    except ConfigError as exc:
        if exposure:
            raise ConfigError(f"{exc}; also, {exposure}") from None
        raise
    if exposure:
        logger.warning("%s", exposure)
    return endpoint


@asynccontextmanager
async def connect(
    endpoint: Endpoint,
    *,
    timeout: float = 60.0,
    connections: int = 100,
    rate: int = 25,
    per: float = 5.0,
) -> AsyncIterator[LeadSquaredClient]:
    """A client for ``endpoint``; for a sandbox endpoint, a local sandbox (limited to ``rate``
    calls per ``per`` s, with one-off keys, mirroring ``endpoint.schema``) runs until the
    block ends."""
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
