"""The pacer on its own: slots, spacing, throttling episodes, cancellation.

Windows are scaled down to a tenth of a second; the assertions are about order and lower
bounds (what the pacer guarantees), with one generous upper bound where escalation is the bug.
"""

from __future__ import annotations

import asyncio

from importer.sending.pacer import Pacer


def test_first_window_starts_are_spread_but_all_fit_in_it() -> None:
    async def scenario() -> list[float]:
        pacer = Pacer(5, 0.4, margin=0.0)
        loop = asyncio.get_running_loop()
        starts: list[float] = []

        async def call() -> None:
            async with pacer.slot() as slot:
                starts.append(loop.time())
                slot.answered()

        await asyncio.gather(*(call() for _ in range(5)))
        return starts

    starts = asyncio.run(scenario())
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    # per / (2 * rate) = 40 ms apart, less the 10 ms the schedule tolerates.
    assert min(gaps) >= 0.029
    # Not one burst, not a slow ramp: a loose bound, since a loaded CI machine runs timers late.
    assert starts[-1] - starts[0] < 2.0


def test_waiters_are_served_in_the_order_they_came() -> None:
    async def scenario() -> list[int]:
        pacer = Pacer(1, 0.05, spread=False, margin=0.0)
        order: list[int] = []

        async def call(n: int) -> None:
            async with pacer.slot() as slot:
                order.append(n)
                slot.answered()

        tasks = []
        for n in range(6):
            tasks.append(asyncio.create_task(call(n)))
            await asyncio.sleep(0)  # each task queues before the next is created
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == list(range(6))


def test_many_429s_of_one_episode_close_for_one_window_not_more() -> None:
    async def scenario() -> tuple[float, float]:
        pacer = Pacer(3, 0.1, spread=False, margin=0.0)
        loop = asyncio.get_running_loop()
        grants = [pacer.slot() for _ in range(3)]
        for grant in grants:  # three calls in flight together...
            await grant.__aenter__()
        for grant in grants:  # ...all answered "rate limited"
            grant.answered()
            await grant.__aexit__(None, None, None)
            pacer.penalize()
        # The pacer's own reopening time, read at once: no timer is involved in the check.
        closed_for = pacer.closed_until - loop.time()
        closed_at = loop.time()
        async with pacer.slot() as slot:
            reopened = loop.time() - closed_at
            slot.answered()
        return closed_for, reopened

    closed_for, waited = asyncio.run(scenario())
    assert waited >= 0.09  # a window after the last 429 (less timer rounding)
    # Escalating per 429 would close for 0.1 * 2**2 = 0.4 s or more (8 windows, the cap: 0.8 s).
    assert closed_for <= 0.1 + 1e-3


def test_after_a_closure_one_probe_goes_alone_until_it_is_answered() -> None:
    async def scenario() -> tuple[float, list[float]]:
        pacer = Pacer(5, 0.1, spread=False, margin=0.0)
        loop = asyncio.get_running_loop()
        async with pacer.slot() as slot:
            slot.answered()
        pacer.penalize()
        answered: list[float] = []
        starts: list[float] = []

        async def call() -> None:
            async with pacer.slot() as slot:
                starts.append(loop.time())
                await asyncio.sleep(0.05)
                slot.answered()
                answered.append(loop.time())
            pacer.recovered()

        await asyncio.gather(*(call() for _ in range(4)))
        return answered[0], starts

    probe_answered, starts = asyncio.run(scenario())
    assert all(start >= probe_answered for start in starts[1:])


def test_a_refused_probe_keeps_every_slot_closed_another_window() -> None:
    async def scenario() -> tuple[float, float]:
        pacer = Pacer(5, 0.1, spread=False, margin=0.0)
        loop = asyncio.get_running_loop()
        async with pacer.slot() as slot:
            slot.answered()
        pacer.penalize()
        async with pacer.slot() as slot:  # the probe
            slot.answered()
        refused_at = loop.time()
        pacer.penalize()
        async with pacer.slot() as slot:  # the next probe
            next_start = loop.time()
            slot.answered()
        return refused_at, next_start

    refused_at, next_start = asyncio.run(scenario())
    assert next_start - refused_at >= 0.1


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_waiter_cancelled_after_its_grant_gives_the_slot_back() -> None:
    async def scenario() -> tuple[bool, int]:
        clock = FakeClock()
        pacer = Pacer(1, 0.05, spread=False, margin=0.0, clock=clock)
        inside, release = asyncio.Event(), asyncio.Event()
        tasks: dict[str, asyncio.Task[None]] = {}

        async def holder() -> None:
            async with pacer.slot() as slot:
                inside.set()
                await release.wait()
                slot.answered()
                clock.now = 1.0  # the slot reopens at 0.05: due as soon as it is released
            # Releasing granted the slot to the waiter; cancel it before it runs.
            tasks["waiter"].cancel()

        async def call() -> None:
            async with pacer.slot() as slot:
                slot.answered()

        tasks["holder"] = asyncio.create_task(holder())
        await inside.wait()
        tasks["waiter"] = asyncio.create_task(call())
        await asyncio.sleep(0)  # the waiter queues for the only slot
        release.set()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        await asyncio.wait_for(call(), timeout=5)  # hangs if the slot was lost
        return tasks["waiter"].cancelled(), pacer.calls

    cancelled, calls = asyncio.run(scenario())
    assert cancelled
    assert calls == 2  # the holder and the last call; the cancelled grant was not counted


def test_a_pacer_moves_to_the_next_event_loop_with_its_slots_still_held() -> None:
    # A batch runs each file in its own asyncio.run: the second loop must see the slots the
    # first one used, or its first window would hold up to 2 * rate calls.
    pacer = Pacer(2, 0.2, spread=False, margin=0.0)
    answers: list[float] = []

    async def use(n: int) -> list[float]:
        loop = asyncio.get_running_loop()
        starts: list[float] = []

        async def call() -> None:
            async with pacer.slot() as slot:
                starts.append(loop.time())  # asyncio's clock is time.monotonic, the pacer's
                slot.answered()
                answers.append(loop.time())

        await asyncio.gather(*(call() for _ in range(n)))
        return starts

    asyncio.run(use(2))
    second = asyncio.run(use(2))
    # Each slot reopens a window after its answer in the first loop, not at once.
    assert min(second) >= min(answers[:2]) + 0.2 - 1e-3
    assert pacer.calls == 4


def test_a_loop_that_ended_with_a_waiter_cancelled_leaves_no_stale_timer() -> None:
    # An interrupted run: a call waited for a slot (the pacer's timer armed on that loop) and
    # was cancelled as the loop ended. The timer never fires on a closed loop.
    pacer = Pacer(1, 0.05, spread=False, margin=0.0)

    async def interrupted() -> None:
        async with pacer.slot() as slot:
            slot.answered()
        waiting = asyncio.create_task(pacer.slot().__aenter__())
        await asyncio.sleep(0)  # it queues; the slot reopens in 0.05 s
        waiting.cancel()

    async def next_run() -> int:
        async with pacer.slot() as slot:
            slot.answered()
        return pacer.calls

    asyncio.run(interrupted())
    assert asyncio.run(asyncio.wait_for(next_run(), timeout=5)) == 2  # hangs if it waits on it
