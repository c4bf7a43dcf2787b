"""Virtual time for pacer tests: an event loop whose clock moves only when it would wait.

A timer due in 0.3 s fires at once, with the clock 0.3 s on; ``asyncio.sleep`` in a fake
server is latency that costs nothing. The pacer is given the same clock, so a test can run
many windows of a real-sized limit, exactly and without sleeping.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Skipping:
    """The loop's selector, except that a wait for the next timer is time passing at once."""

    def __init__(self, selector: selectors.BaseSelector, clock: VirtualClock) -> None:
        self._selector = selector
        self._clock = clock

    def select(self, timeout: float | None = None) -> Any:
        ready = self._selector.select(0)
        if not ready:
            if timeout is None:
                raise RuntimeError("deadlock: no timer is due and nothing is ready")
            self._clock.now += max(0.0, timeout)
        return ready

    def __getattr__(self, name: str) -> Any:
        return getattr(self._selector, name)


def run_virtual(main: Callable[[], Awaitable[T]], clock: VirtualClock) -> T:
    """``asyncio.run(main())`` on a loop whose ``time()`` is ``clock``."""

    def loop_factory() -> asyncio.AbstractEventLoop:
        loop = asyncio.SelectorEventLoop()
        # The selector event loop's own attributes: what it waits on, and its clock.
        loop._selector = _Skipping(loop._selector, clock)
        loop.time = clock
        return loop

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())
