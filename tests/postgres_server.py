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
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ENV_URL = "LSQ_TEST_POSTGRES"
ENV_REQUIRED = "LSQ_TEST_REQUIRE_POSTGRES"
"""Set (by .ci/run): a missing server fails the PostgreSQL tests instead of skipping them."""


class Unavailable(RuntimeError):
    """No PostgreSQL server can be started here (said why)."""


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


@contextlib.contextmanager
def start() -> Iterator[str]:
    """A running server (its ``postgresql://`` URL, database ``postgres``, user ``lsq``, no
    password), stopped and deleted on exit."""
    given = os.environ.get(ENV_URL, "").strip()
    if given:
        yield given
        return
    initdb, postgres = _programs()
    user: str | None = None
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no 'postgres' user") from None
        user = "postgres"
    folder = Path(tempfile.mkdtemp(prefix="lsq-pg-"))
    data = folder / "data"
    try:
        if user is not None:
            shutil.chown(folder, user)
        subprocess.run(
            [initdb, "-D", str(data), "-U", "lsq", "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            user=user,
        )
        port = _free_port()
        process = subprocess.Popen(
            [
                postgres,
                "-D", str(data),
                "-h", "127.0.0.1",
                "-p", str(port),
                "-k", str(folder),
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
                "-c", "max_connections=300",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(folder / "server.log", "wb"),  # noqa: SIM115 (the server keeps it)
            user=user,
        )  # fmt: skip
        url = f"postgresql://lsq@127.0.0.1:{port}/postgres"
        try:
            _ready(url, process, time.monotonic() + 60)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    except subprocess.CalledProcessError as exc:
        raise Unavailable(f"initdb failed: {exc.stderr.decode(errors='replace')[-300:]}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
