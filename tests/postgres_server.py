"""A throwaway PostgreSQL server on loopback, for the team-mode tests and benchmarks.

:func:`start` looks for the server's programs (``initdb`` and ``postgres`` on ``PATH``, or
Debian's ``/usr/lib/postgresql/<version>/bin``), makes a cluster in a temporary folder and
starts it on 127.0.0.1 at a free port, with no durability (``fsync=off``: the tests kill
lsq-import processes, never the server). Run as root, the server runs as the ``postgres``
user (PostgreSQL refuses root). ``$LSQ_TEST_POSTGRES`` (a ``postgresql://`` URL) names a server
to use instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

ENV_URL = "LSQ_TEST_POSTGRES"
ENV_REQUIRED = "LSQ_TEST_REQUIRE_POSTGRES"
"""Set (by .ci/run): a missing server fails the PostgreSQL tests instead of skipping them."""


class Unavailable(RuntimeError):
    """No PostgreSQL server can be started here (said why)."""


def not_here(exc: Unavailable) -> NoReturn:
    """Skip the test that needs a server, or fail it under ``$LSQ_TEST_REQUIRE_POSTGRES``."""
    import pytest

    if os.environ.get(ENV_REQUIRED):
        pytest.fail(f"PostgreSQL required (${ENV_REQUIRED}) but: {exc}")
    pytest.skip(f"no PostgreSQL server: {exc}")


def _programs() -> tuple[str, str]:
    for folder in [None, *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]:
        initdb = shutil.which("initdb", path=folder)
        postgres = shutil.which("postgres", path=folder)
        if initdb and postgres:
            return initdb, postgres
    raise Unavailable("no PostgreSQL server programs (initdb, postgres) on this machine")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(url: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    import psycopg

    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            if process.poll() is not None:
                raise Unavailable(f"the PostgreSQL server exited at start ({exc})") from None
            if time.monotonic() > deadline:
                raise Unavailable(f"the PostgreSQL server did not start ({exc})") from None
        time.sleep(0.05)  # polling a starting server, not covering a race


class Cluster:
    """A server's cluster in a temporary folder, stopped and started at will (a test of the
    database going away mid-run); :attr:`url` stays the same."""

    def __init__(self) -> None:
        initdb, self._postgres = _programs()
        self._user: str | None = None
        if os.geteuid() == 0:
            try:
                import pwd

                pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable("running as root and there is no 'postgres' user") from None
            self._user = "postgres"
        self.folder = Path(tempfile.mkdtemp(prefix="lsq-pg-"))
        self._data = self.folder / "data"
        self._process: subprocess.Popen[bytes] | None = None
        try:
            if self._user is not None:
                shutil.chown(self.folder, self._user)
            subprocess.run(
                [initdb, "-D", str(self._data), "-U", "lsq", "--auth=trust", "-E", "UTF8",
                 "--no-sync"],
                check=True,
                capture_output=True,
                user=self._user,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            self.remove()
            raise Unavailable(
                f"initdb failed: {exc.stderr.decode(errors='replace')[-300:]}"
            ) from None
        self.port = _free_port()
        self.url = f"postgresql://lsq@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                self._postgres,
                "-D", str(self._data),
                "-h", "127.0.0.1",
                "-p", str(self.port),
                "-k", str(self.folder),
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
                "-c", "max_connections=300",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.folder / "server.log", "ab"),  # noqa: SIM115 (the server keeps it)
            user=self._user,
        )  # fmt: skip
        _ready(self.url, self._process, time.monotonic() + 60)

    def stop(self) -> None:
        """A fast shutdown: connections are cut, as when the database host goes away."""
        if self._process is not None:
            self._process.send_signal(signal.SIGINT)  # "fast" (SIGTERM waits for clients)
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """A new cluster, started; stopped and deleted on exit."""
    made = Cluster()
    try:
        made.start()
        yield made
    finally:
        made.remove()


@contextlib.contextmanager
def start() -> Iterator[str]:
    """A running server (its ``postgresql://`` URL, database ``postgres``, user ``lsq``, no
    password), stopped and deleted on exit; ``$LSQ_TEST_POSTGRES`` when set."""
    given = os.environ.get(ENV_URL, "").strip()
    if given:
        yield given
        return
    with cluster() as made:
        yield made.url
