"""Where to send calls and with which keys: host normalisation and credentials.

Keys come from the environment (``LSQ_ACCESS_KEY``, ``LSQ_SECRET_KEY``) or from a config file
passed in by the caller, never from the command line, and are only ever put into request
headers. :class:`Credentials` hides them from ``repr`` so a traceback or log line can't show them.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .exceptions import ConfigError

ENV_ACCESS_KEY = "LSQ_ACCESS_KEY"
ENV_SECRET_KEY = "LSQ_SECRET_KEY"
ENV_HOST = "LSQ_HOST"
DEFAULT_HOST = "api.leadsquared.com"


@dataclass(frozen=True)
class Credentials:
    """An access key and secret key pair. ``repr`` and ``str`` never show them."""

    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)

    def __str__(self) -> str:
        return "Credentials(<hidden>)"

    def secrets(self) -> tuple[str, str]:
        """Both keys, e.g. to scrub them from text."""
        return self.access_key, self.secret_key


def credentials_from_env(env: Mapping[str, str] | None = None) -> Credentials:
    """Read the keys from ``LSQ_ACCESS_KEY`` and ``LSQ_SECRET_KEY``."""
    env = os.environ if env is None else env
    access, secret = env.get(ENV_ACCESS_KEY, "").strip(), env.get(ENV_SECRET_KEY, "").strip()
    missing = [
        name for name, value in ((ENV_ACCESS_KEY, access), (ENV_SECRET_KEY, secret)) if not value
    ]
    if missing:
        raise ConfigError(
            f"{' and '.join(missing)} not set: export your LeadSquared API keys "
            "(Settings > API and Webhooks) or use --sandbox to try the local sandbox"
        )
    return Credentials(access, secret)


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def base_url(host: str | None) -> str:
    """Turn ``--host``/``LSQ_HOST`` into a base URL without a trailing slash.

    A bare host (``api-in21.leadsquared.com``) means HTTPS. A full URL is taken as given, but
    plain ``http://`` only for loopback addresses (the sandbox, tests): keys must not cross a
    network unencrypted.
    """
    host = (host or DEFAULT_HOST).strip()
    if "://" not in host:
        host = f"https://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"--host: {host!r} is not a host name or http(s) URL (e.g. api-in21.leadsquared.com)"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"--host: {host!r} uses plain http; only https is allowed except for "
            "loopback addresses (127.0.0.1, localhost)"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"--host: {host!r} must not have a query or fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
