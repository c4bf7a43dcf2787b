"""Where to send calls and with which keys: host normalisation and credentials.

Keys come from the environment (``LSQ_ACCESS_KEY``, ``LSQ_SECRET_KEY``) or from a config file
passed in by the caller, never from the command line, and are only ever put into request
headers. :class:`Credentials` hides them from ``repr`` so a traceback or log line can't show them.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .exceptions import ConfigError

ENV_ACCESS_KEY = "LSQ_ACCESS_KEY"
ENV_SECRET_KEY = "LSQ_SECRET_KEY"
ENV_HOST = "LSQ_HOST"
DEFAULT_HOST = "api.leadsquared.com"

logger = logging.getLogger("lsq_import")

# A key travels in a header, and LeadSquared's keys are printable ASCII (``u$r`` and letters
# and digits): a CR or LF would split the header (aiohttp refused it with a ValueError
# mid-run, exit 70), a raw byte that is not UTF-8 (read from the environment as a surrogate
# escape) cannot be encoded at all (UnicodeEncodeError, exit 70), and a space, U+2028 or a
# no-break space is a bad paste that the server refuses as a wrong key.
_NOT_KEY_CHARACTER = re.compile(r"[^\x21-\x7e]")
# The characters str.splitlines() breaks at.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

MIN_KEY_LENGTH = 8
"""The shortest key accepted. LeadSquared's keys are dozens of characters long (an access key
is ``u$r`` and 32 more; a secret key 40), the sandbox's ``sandbox-access-key`` 18 and the
throwaway ``--sandbox`` keys 32. A shorter "key" is a bad paste or a placeholder, and the
scrubbing of server texts (``leadsquared.scrub``) relies on keys being long: a one-character
secret would be hidden in every word that contains it, and its encodings would be found
everywhere, withholding every message."""


def _what(char: str) -> str:
    if char in _LINE_BREAKS:
        return "a line break"
    if char == " ":
        return "a space"
    if "\udc80" <= char <= "\udcff":  # how os.environ and surrogateescape carry a raw byte
        return "a byte that is not UTF-8"
    if char < "\x80":
        return "a control character"
    return f"a character that is not ASCII (U+{ord(char):04X})"


def check_key(name: str, value: str) -> None:
    """Raise ConfigError (one line naming ``name``, never the value) unless ``value`` can be
    a LeadSquared key: printable ASCII without spaces, at least :data:`MIN_KEY_LENGTH`
    characters."""
    found = _NOT_KEY_CHARACTER.search(value)
    if found is not None:
        raise ConfigError(
            f"{name} contains {_what(found.group())} at position {found.start() + 1}: "
            "copy the key again from Settings > API and Webhooks"
        )
    if len(value) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"{name} is shorter than {MIN_KEY_LENGTH} characters, too short for a LeadSquared "
            "key: copy the key again from Settings > API and Webhooks"
        )


@dataclass(frozen=True)
class Credentials:
    """An access key and secret key pair. ``repr`` and ``str`` never show them.

    Raises ConfigError when a key is not one (see :func:`check_key`: a line break, a space,
    a character that is not printable ASCII, or fewer than :data:`MIN_KEY_LENGTH`
    characters), so keys given in code are checked like keys read from the environment.
    """

    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)

    def __post_init__(self) -> None:
        check_key("the access key", self.access_key)
        check_key("the secret key", self.secret_key)

    def __str__(self) -> str:
        return "Credentials(<hidden>)"

    def secrets(self) -> tuple[str, str]:
        """Both keys, e.g. to scrub them from text."""
        return self.access_key, self.secret_key


KEYS_HINT = (
    "export your LeadSquared API keys (Settings > API and Webhooks) or use --sandbox to try "
    "the local sandbox"
)
"""What the message for missing keys says to do, unless the caller knows better."""


def credentials_from_env(
    env: Mapping[str, str] | None = None, *, hint: str = KEYS_HINT
) -> Credentials:
    """Read the keys from ``LSQ_ACCESS_KEY`` and ``LSQ_SECRET_KEY``; ``hint`` ends the one
    line when one is not set."""
    env = os.environ if env is None else env
    access, secret = env.get(ENV_ACCESS_KEY, "").strip(), env.get(ENV_SECRET_KEY, "").strip()
    missing = [
        name for name, value in ((ENV_ACCESS_KEY, access), (ENV_SECRET_KEY, secret)) if not value
    ]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} not set: {hint}")
    # Checked here too, to name the variable (Credentials can only say which key).
    check_key(ENV_ACCESS_KEY, access)
    check_key(ENV_SECRET_KEY, secret)
    return Credentials(access, secret)


ENV_FILE_KEYS = (ENV_ACCESS_KEY, ENV_SECRET_KEY, ENV_HOST)


def read_env_file(path: str | os.PathLike[str], *, warn: bool = True) -> dict[str, str]:
    """Read ``LSQ_*`` settings from an environment file (``NAME=value`` lines, ``#`` comments,
    optional ``export`` and quotes): the format of systemd's ``EnvironmentFile=`` and of
    ``. file`` in a shell, so one file serves cron, systemd and lsq-import alike.

    A file readable by other users (it holds the secret key) is warned about (logging) once it
    is accepted; when it is refused, the refusal says so too, in its one line. ``warn=False``
    leaves both to a caller that may still refuse the values (see :func:`env_file_exposure`).
    """
    file = Path(path)
    try:
        values = _parse_env_file(file)
    except ConfigError as exc:
        exposure = env_file_exposure(file) if warn else ""
        if exposure:
            raise ConfigError(f"{exc}; also, {exposure}") from None
        raise
    if warn and (exposure := env_file_exposure(file)):
        logger.warning("%s", exposure)
    return values


def env_file_exposure(path: str | os.PathLike[str]) -> str:
    """The one-line warning for an environment file other users can read, or ""."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return ""
    if not stat.S_ISREG(mode) or not mode & (stat.S_IRGRP | stat.S_IROTH):
        return ""
    return f"{path} is readable by other users and holds your API keys: chmod 600 {path}"


MAX_ENV_FILE = 64 * 1024
"""An environment file is a few lines: a larger one is not one (``/dev/zero`` read for ever)."""


def _parse_env_file(file: Path) -> dict[str, str]:
    try:
        if not stat.S_ISREG(file.stat().st_mode):  # before opening: a pipe would block
            raise ConfigError(f"{file}: not a regular file; --env-file takes a settings file")
        with open(file, "rb") as handle:
            data = handle.read(MAX_ENV_FILE + 1)
        if len(data) > MAX_ENV_FILE:
            raise ConfigError(
                f"{file}: larger than {MAX_ENV_FILE // 1024} KiB; a settings file is a few lines"
            )
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the settings file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: the settings file is not UTF-8 text") from None
    values: dict[str, str] = {}
    # Lines end at "\n" only (read_text turned "\r\n" and "\r" into it): splitlines() also
    # broke at U+2028, U+0085 and the like, cutting a key in two and reading its rest as a
    # setting of a line the file does not have.
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name.isidentifier():
            raise ConfigError(f"{file}: line {number}: expected NAME=value")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if name not in ENV_FILE_KEYS:
            raise ConfigError(
                f"{file}: line {number}: unknown setting {name!r} "
                f"(allowed: {', '.join(ENV_FILE_KEYS)})"
            )
        if value and name in (ENV_ACCESS_KEY, ENV_SECRET_KEY):
            check_key(f"{file}: line {number}: {name}", value)
        values[name] = value
    return values


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


def check_sandbox_schema(sandbox: bool, schema: str | os.PathLike[str] | None) -> None:
    """A sandbox schema file only makes sense for a throwaway sandbox: refuse it otherwise
    (a real account has its own schema; a standing sandbox takes ``sandbox --schema``)."""
    if schema is not None and not sandbox:
        raise ConfigError(
            f"--schema {os.fspath(schema)}: applies only with --sandbox (the throwaway sandbox "
            "mirrors it); for a standing one: lsq-import sandbox --schema FILE"
        )


MODES = ("single", "bulk", "auto")
"""How rows are sent (``ImportSettings.mode``)."""
MAX_BATCH = 25
"""The most rows a bulk batch holds (LeadSquared's bulk calls take 25 records)."""

PREFLIGHT_CALLS = 3
"""The most calls the preflight check makes (activity types, the type's fields, lead fields)."""


@dataclass(frozen=True)
class ImportSettings:
    """Everything a run is told besides its input, mapping and results file: read once (from
    the command line, a scheduler task or a notebook), checked here, then passed down whole.

    ``run_import(path, mapping, rate=10)`` builds one from its keyword arguments;
    ``run_import(path, mapping, settings=ImportSettings(rate=10))`` passes it as it is.
    """

    host: str | None = None
    """Regional API host or URL (default ``$LSQ_HOST``, then ``api.leadsquared.com``)."""
    credentials: Credentials | None = field(default=None, repr=False)
    """The keys (default ``$LSQ_ACCESS_KEY``/``$LSQ_SECRET_KEY``)."""
    env_file: str | os.PathLike[str] | None = None
    """An environment file with ``LSQ_*`` lines; overrides the environment."""
    sandbox: bool = False
    """Send to a throwaway local sandbox instead (host and keys are ignored)."""
    sandbox_schema: str | os.PathLike[str] | None = None
    """With ``sandbox``: a schema file (``lsq-import account --output``) it mirrors."""
    rate: int = None  # type: ignore[assignment]  # an int once made: see __post_init__
    """Calls per ``per`` seconds (default: ``plan``'s, else 25)."""
    per: float = 5.0
    mode: str = "single"
    """``single`` (one CreateCustom call per row), ``bulk`` (batches of ``batch_size`` rows
    through the bulk endpoints: two calls a batch) or ``auto`` (both at once, each path under
    its own limit; see importer.sending.bulk)."""
    batch_size: int = 25
    bulk_rate: int = None  # type: ignore[assignment]  # an int once made
    """Bulk calls per ``bulk_per`` seconds (default: ``plan``'s, else 1: the older rate-limit
    page's limit for every plan)."""
    bulk_per: float = None  # type: ignore[assignment]  # a float once made
    """The bulk limit's window in seconds (default ``per``)."""
    bulk_shares_limit: bool = True
    """Bulk calls also count against the ordinary limit (undocumented; the safe assumption):
    each takes a slot of both."""
    plan: str | None = None
    """A LeadSquared plan (importer.plans): its limits are the defaults of ``rate`` and
    ``bulk_rate`` (given ones win)."""
    concurrency: int | None = None
    """Most calls in flight (default ``rate``)."""
    timeout: float = 60.0
    max_attempts: int = 5
    retry_delay: tuple[float, float] = (0.5, 30.0)
    """(base, cap) seconds of the exponential backoff between attempts."""
    max_calls: int | None = None
    """A budget of API calls for the run (retries and preflight included)."""
    start_row: int | None = None
    limit: int | None = None
    retry_unknown: bool = False
    reconcile: bool = True
    """Settle ``unknown`` rows by asking LeadSquared (importer.sending.reconcile)."""
    reconcile_only: bool = False
    """Look up the ``unknown`` rows and send nothing (``lsq-import reconcile``): a row that
    never landed is recorded ``failed`` ("not landed"), so the next run sends it."""
    settle_delay: float = 10.0
    """Seconds after a lost answer before its row is looked up (LeadSquared's read side may
    lag), and again before a row whose lead exists but whose activity was not seen is re-sent."""
    force_resume: bool = False
    preflight_check: bool = True
    sheet: str | int | None = None
    encoding: str | None = None
    delimiter: str | None = None
    ledger: str | os.PathLike[str] | bool | None = None
    """The ledger of what was imported into the account (importer.ledger): None for the
    default (``$LSQ_LEDGER``, else one per account in the user's data directory; none for a
    throwaway ``sandbox``), a path, or False for none (``--no-ledger``)."""
    reimport: bool = False
    """Send rows the ledger lists as imported already, for this run (``--reimport``)."""

    def __post_init__(self) -> None:
        check_sandbox_schema(self.sandbox, self.sandbox_schema)
        from .plans import DEFAULT_BULK_RATE, plan_named

        plan = plan_named(self.plan) if self.plan is not None else None
        if plan is not None:
            object.__setattr__(self, "plan", plan.name)
        if self.rate is None:
            object.__setattr__(self, "rate", plan.calls if plan else 25)
        if self.bulk_rate is None:
            object.__setattr__(self, "bulk_rate", plan.bulk_calls if plan else DEFAULT_BULK_RATE)
        if self.bulk_per is None:
            object.__setattr__(self, "bulk_per", self.per)
        if self.reimport and self.ledger is False:
            raise ConfigError(
                "--reimport sends rows the ledger lists as imported; with --no-ledger there is "
                "none: give one or the other"
            )
        if self.mode not in MODES:
            raise ConfigError(f"--mode {self.mode}: one of {', '.join(MODES)}")
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise ConfigError(
                f"--batch-size {self.batch_size}: from 1 to {MAX_BATCH} (the most LeadSquared's "
                "bulk calls take)"
            )
        if self.bulk_rate < 1 or not (math.isfinite(self.bulk_per) and self.bulk_per > 0):
            raise ConfigError(
                f"--bulk-rate {self.bulk_rate} --bulk-per {self.bulk_per:g}: rate must be >= 1 "
                "and per > 0"
            )
        if self.rate < 1 or self.per <= 0:
            raise ConfigError(f"--rate {self.rate} --per {self.per}: rate must be >= 1 and per > 0")
        if self.concurrency is not None and self.concurrency < 1:
            raise ConfigError(f"--concurrency {self.concurrency}: must be at least 1")
        for name, value, low in (
            ("--max-calls", self.max_calls, 1),
            ("--start-row", self.start_row, 2),
            ("--limit", self.limit, 1),
        ):
            if value is not None and value < low:
                raise ConfigError(f"{name} {value}: must be at least {low}")
        if not math.isfinite(self.settle_delay) or self.settle_delay < 0:
            raise ConfigError(
                f"--settle-delay {self.settle_delay}: must be a number of seconds, 0 or more"
            )
        if (
            self.preflight_check
            and self.max_calls is not None
            and self.max_calls <= PREFLIGHT_CALLS
        ):
            # The check would spend the whole budget (or more) before any row, every night.
            raise ConfigError(
                f"--max-calls {self.max_calls}: the preflight check alone takes up to "
                f"{PREFLIGHT_CALLS} calls, leaving none for rows; give a larger budget, or add "
                "--no-preflight"
            )

    @property
    def calls_in_flight(self) -> int:
        return self.concurrency or self.rate

    @property
    def bulk(self) -> bool:
        """Rows go (at least partly) through the bulk endpoints."""
        return self.mode != "single"

    @property
    def is_trial(self) -> bool:
        """Only part of the file is sent (``start_row``/``limit``)."""
        return bool(self.start_row or self.limit)
