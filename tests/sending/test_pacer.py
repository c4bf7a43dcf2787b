"""The pacer on its own: slots, spacing, throttling episodes, cancellation.

Windows are scaled down to a tenth of a second; the assertions are about order and lower
bounds (what the pacer guarantees), with one generous upper bound where escalation is the bug.
"""

from __future__ import annotations

import asyncio

from importer.sending.pacer import Pacer

from .virtual import VirtualClock, run_virtual


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


# ---- learning the account's limit from a refusal (virtual time: real-sized windows, no wait)


class RollingWindow:
    """LeadSquared's limit as the sandbox keeps it: a call is refused when ``rate`` calls
    (refused ones too) arrived in the ``per`` seconds before it."""

    def __init__(self, rate: int, per: float) -> None:
        self.rate, self.per = rate, per
        self.arrivals: list[tuple[float, bool]] = []  # (when, refused)

    def admit(self, now: float) -> bool:
        recent = sum(1 for when, _ in self.arrivals if when > now - self.per)
        refused = recent >= self.rate
        self.arrivals.append((now, refused))
        return not refused


def test_after_learning_no_new_call_lands_in_a_window_over_the_learnt_rate() -> None:
    # The pacer is told 10 per 1 s; the account allows 4. Calls arrive anywhere between
    # their start and their answer, 50 to 350 ms apart.
    clock = VirtualClock()
    server = RollingWindow(4, 1.0)
    pacer = Pacer(10, 1.0, clock=clock)
    learnt_at: list[float] = []
    sent: list[tuple[float, float, bool]] = []  # (start, arrival, refused)
    rows = list(range(80))

    async def worker() -> None:
        while rows:
            n = rows.pop()
            refused = True
            while refused:
                latency = 0.05 + 0.1 * (n % 4)
                part = (0.1, 0.5, 0.9)[n % 3]
                async with pacer.slot() as slot:
                    start = clock.now
                    await asyncio.sleep(latency * part)
                    refused = not server.admit(clock.now)
                    sent.append((start, clock.now, refused))
                    await asyncio.sleep(latency * (1 - part))
                    slot.answered()
                if refused:
                    if pacer.learn(4, 1.0):
                        learnt_at.append(clock.now)
                    pacer.penalize()
                else:
                    pacer.recovered()

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(10)))

    run_virtual(main, clock)
    assert len(learnt_at) == 1  # one change, however many calls the episode refused
    assert (pacer.rate, pacer.per, pacer.learnt) == (4, 1.0, (4, 1.0))
    after = [(start, arrival, refused) for start, arrival, refused in sent if start > learnt_at[0]]
    assert len(after) >= 60
    for _, arrival, refused in after:
        assert not refused
        in_window = sum(1 for when, _ in server.arrivals if arrival - 1.0 < when <= arrival)
        assert in_window <= 4
    assert sum(1 for _, _, refused in sent if not refused) == 80
    starts = sorted(start for start, _, _ in after)
    # Spread at the learnt pace: per / (2 * 4) apart, less the spacing's 10 ms tolerance.
    assert min(b - a for a, b in zip(starts, starts[1:], strict=False)) >= 0.125 - 0.01 - 1e-9
    # Still as fast as the slots allow: 4 calls per window plus latency, not a crawl.
    assert clock.now < 80 / 4 * 1.4


def test_slots_in_flight_when_the_pacer_learns_do_not_come_back() -> None:
    clock = VirtualClock()

    async def main() -> tuple[bool, int, int]:
        pacer = Pacer(5, 1.0, spread=False, margin=0.0, clock=clock)
        in_flight = [pacer.slot() for _ in range(3)]
        for slot in in_flight:
            await slot.__aenter__()
        changed = pacer.learn(2, 1.0)  # 2 free slots dropped; 1 of the 3 in flight is excess
        for slot in in_flight:
            slot.answered()
            await slot.__aexit__(None, None, None)
        release = asyncio.Event()
        holding = 0

        async def hold() -> None:
            nonlocal holding
            async with pacer.slot() as slot:
                holding += 1
                await release.wait()
                slot.answered()

        tasks = [asyncio.create_task(hold()) for _ in range(3)]
        await asyncio.sleep(10.0)  # every slot there is has reopened long since
        held_at_once = holding
        release.set()
        await asyncio.gather(*tasks)
        return changed, held_at_once, holding

    changed, held_at_once, holding = run_virtual(main, clock)
    assert changed
    assert held_at_once == 2  # not 3: the third in-flight slot was dropped when released
    assert holding == 3  # the third waiter went once a slot came back


def test_a_longer_window_applies_to_free_slots_and_to_slots_in_flight() -> None:
    clock = VirtualClock()

    async def main() -> list[float]:
        pacer = Pacer(2, 1.0, spread=False, margin=0.0, clock=clock)
        starts: list[float] = []

        async def call(latency: float) -> None:
            async with pacer.slot() as slot:
                starts.append(clock.now)
                await asyncio.sleep(latency)
                slot.answered()

        first = asyncio.create_task(call(0.1))  # answered at 0.1: free when the pacer learns
        second = asyncio.create_task(call(0.5))  # in flight then, answered at 0.5
        await asyncio.sleep(0.2)
        assert pacer.learn(2, 3.0)
        await asyncio.gather(first, second)
        await asyncio.gather(call(0.0), call(0.0))
        return starts

    starts = run_virtual(main, clock)
    assert starts[:2] == [0.0, 0.0]
    assert sorted(starts[2:]) == [3.1, 3.5]  # a 3 s window after each answer, not 1 s


def test_learning_only_ever_lowers_the_pace_and_says_so_once_per_change() -> None:
    pacer = Pacer(25, 5.0)
    assert pacer.learnt is None
    assert pacer.learn(10, 5.0)
    assert (pacer.rate, pacer.per, pacer.learnt) == (10, 5.0, (10, 5.0))
    assert not pacer.learn(10, 5.0)  # the same limit again (the rest of the episode)
    assert not pacer.learn(25, 5.0)  # looser: another client's doing; penalize() covers it
    assert not pacer.learn(20, 1.0)
    assert (pacer.rate, pacer.per, pacer.learnt) == (10, 5.0, (10, 5.0))
    assert pacer.learn(5, 5.0)  # stricter still: a change worth saying
    assert pacer.learnt == (5, 5.0)
    assert pacer.learn(25, 10.0)  # a longer window; the rate stays the lower one
    assert (pacer.rate, pacer.per, pacer.learnt) == (5, 10.0, (5, 10.0))


def test_a_limit_looser_than_the_pacers_changes_nothing() -> None:
    clock = VirtualClock()

    async def main() -> list[float]:
        pacer = Pacer(3, 1.0, spread=False, margin=0.0, clock=clock)
        assert not pacer.learn(10, 1.0)
        starts: list[float] = []

        async def call() -> None:
            async with pacer.slot() as slot:
                starts.append(clock.now)
                slot.answered()

        await asyncio.gather(*(call() for _ in range(6)))
        return starts

    assert run_virtual(main, clock) == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]


def test_a_kept_slot_waits_until_the_calls_through_dropped_ones_left_the_window() -> None:
    # No closure after learning here (learn() alone): the calls answered at 0.5 and 0.9 may
    # have arrived as late as that, so with one slot left the next call waits until 1.9.
    clock = VirtualClock()

    async def main() -> float:
        pacer = Pacer(3, 1.0, spread=False, margin=0.0, clock=clock)

        async def call(latency: float) -> float:
            async with pacer.slot() as slot:
                start = clock.now
                await asyncio.sleep(latency)
                slot.answered()
            return start

        await asyncio.gather(call(0.1), call(0.5), call(0.9))
        assert pacer.learn(1, 1.0)
        return await call(0.0)

    assert run_virtual(main, clock) == 1.9
