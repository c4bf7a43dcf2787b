"""Where the ledger lives: one SQLite file per account, in the user's data directory.

The account is its host and access key: the file name holds the host and a digest of the
two, never the key. ``$LSQ_LEDGER`` (a path, a ``postgresql://`` URL for team mode, or
``off``) and ``--ledger``/``--no-ledger`` override the default.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

ENV_LEDGER = "LSQ_LEDGER"
OFF = "off"
SCHEMES = ("postgresql://", "postgres://")
"""A setting with one of these names a PostgreSQL database (importer.ledger.postgres)."""


def is_url(location: object) -> bool:
    """Whether a ledger setting names a PostgreSQL database rather than a file."""
    return isinstance(location, str) and location.strip().lower().startswith(SCHEMES)


def data_dir() -> Path:
    """The per-user data directory of lsq-import (``~/.local/share/lsq-import`` on Linux,
    honouring ``$XDG_DATA_HOME``; the platform's own elsewhere)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("lsq-import", appauthor=False))


def default_path(host: str, access_key: str) -> Path:
    """The ledger of the account at ``host`` reached with ``access_key``."""
    host = host.strip().rstrip("/").lower()  # host names ignore case
    digest = hashlib.sha256(f"{host}\0{access_key}".encode()).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9.-]+", "_", host).strip("_") or "account"
    return data_dir() / "ledgers" / f"{name}-{digest}.sqlite"


def from_environment() -> str | None:
    """``$LSQ_LEDGER`` when set (a path, or ``off``)."""
    value = os.environ.get(ENV_LEDGER, "").strip()
    return value or None


def resolve(
    setting: str | os.PathLike[str] | bool | None,
    *,
    host: str | None,
    access_key: str | None,
    throwaway: bool = False,
) -> Path | str | None:
    """The ledger a run uses: ``setting`` (a path or a ``postgresql://`` URL; False or
    ``off``: none), else ``$LSQ_LEDGER``, else the account's default; none for a throwaway
    sandbox (``throwaway``), whose account is new every run, unless ``setting`` names one."""
    if setting is False:
        return None
    if setting is None or setting is True:
        if throwaway:
            # A throwaway sandbox: never the job's ledger of $LSQ_LEDGER (a rehearsal would
            # mark real rows imported); only a ledger named for the run itself.
            return None
        setting = from_environment()
        if setting is None:
            if host is None or access_key is None:
                return None
            return default_path(host, access_key)
    text = os.fspath(setting)
    if text.strip().lower() == OFF:
        return None
    if is_url(text):
        return text.strip()  # team mode: importer.ledger.postgres
    return Path(text).expanduser()
