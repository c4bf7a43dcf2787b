"""Running a :class:`Sandbox` for sync callers (tests, benchmarks) and from the shell."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from .server import Sandbox, check_loopback

__all__ = ["SandboxThread", "serve"]

_T = TypeVar("_T")


class SandboxThread:
    """Run a :class:`Sandbox` on its own event loop in a daemon thread, for sync callers.

    ``with SandboxThread(rate=5, per=1.0) as sandbox:`` yields the started sandbox (its
    ``base_url`` is set). Reading ``sandbox.calls``/``activities`` once the client run has
    finished is safe; while requests may still be in flight use :meth:`snapshot`.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **sandbox_kwargs: Any) -> None:
        check_loopback(host)
        self.sandbox = Sandbox(**sandbox_kwargs)
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def is_running(self) -> bool:
        """Whether the server's thread is alive: False before ``__enter__`` and after stop."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.sandbox.start(self._host, self._port))
        except BaseException as exc:  # handed to the caller of __enter__
            self._error = exc
            loop.close()
            self._ready.set()
            return
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def __enter__(self) -> Sandbox:
        if self._thread is not None:
            raise RuntimeError("SandboxThread is not reentrant")
        self._thread = threading.Thread(target=self._run, name="lsq-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("the sandbox did not start within 30 s")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self.sandbox

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server and join the thread. Safe to call twice."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.sandbox.stop(), loop).result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=30)

    def call(self, fn: Callable[[], _T], timeout: float = 30) -> _T:
        """Run ``fn`` on the sandbox's loop, so it sees a consistent state; return its result."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the sandbox is not running")

        async def run() -> _T:
            return fn()

        coro: Coroutine[Any, Any, _T] = run()
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=timeout)

    def snapshot(self) -> dict[str, Any]:
        """Thread-safe :meth:`Sandbox.snapshot`."""
        return self.call(self.sandbox.snapshot)

    def reset(self) -> None:
        """Thread-safe :meth:`Sandbox.reset`."""
        self.call(self.sandbox.reset)


def serve(*, host: str = "127.0.0.1", port: int = 8787, **sandbox_kwargs: Any) -> None:
    """Run a sandbox in the foreground until Ctrl-C (``lsq-import sandbox``).

    Prints one line to stderr, e.g. ``LeadSquared sandbox on http://127.0.0.1:8787 (rate 25
    per 5 s, bulk 1 per 5 s also counted in the rate) - Ctrl-C to stop`` (``not counted in
    the rate`` with ``bulk_shares_limit=False``; ``; faults <spec>`` after the limits when
    faults are on). Refuses non-loopback hosts with ConfigError. Example::

        serve(port=8787, rate=10, bulk_rate=5, faults=FaultConfig.from_spec("drop_after=0.05"))
    """
    check_loopback(host)
    sandbox = Sandbox(**sandbox_kwargs)

    async def main() -> None:
        url = await sandbox.start(host, port)
        faults = sandbox.faults.to_spec()
        counted = "also" if sandbox.bulk_shares_limit else "not"
        print(
            f"LeadSquared sandbox on {url} (rate {sandbox.rate} per {sandbox.per:g} s, "
            f"bulk {sandbox.bulk_rate} per {sandbox.bulk_per:g} s {counted} counted in the rate"
            f"{'; faults ' + faults if faults else ''}) - Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await sandbox.stop()

    # asyncio.run turns Ctrl-C into cancelling main(), which stops the server, then re-raises.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
