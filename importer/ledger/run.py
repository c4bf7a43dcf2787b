"""One run's use of the ledger: claim each row before it is queued, settle what it finds.

:meth:`RunLedger.claimed` sits between the row feed and the worker pool. It claims rows in
small groups (one transaction each, in the ledger's own thread, so the event loop never waits
on the disk) and passes on only the rows it claimed:

* imported already: recorded ``skipped`` (``already imported <when> from <file> row <n>
  (activity <id>)``), nothing sent;
* held by another live claim (another process sending the same activity, or an earlier row of
  this run): set aside and asked about again every half second; once the holder settles it,
  it is skipped (imported) or claimed and sent (the holder's call failed). A row still held
  when the input is read to the end and nothing moved for ``hold_timeout`` seconds is recorded
  ``failed`` (the next run skips or sends it);
* stale (claimed by a process that died): taken over, and kept with what the dead process sent
  (its row token) for the run to look up at its end (:attr:`RunLedger.stale`), unless the
  claim was this very results file's row: the results file settled that one already.

Outcomes come back through :meth:`RunLedger.settled`: ``success`` marks the activity imported,
``failed`` and ``invalid`` release the claim, ``unknown`` keeps it (reconciliation settles
it; a run that ends with it unsettled leaves a claim the next process settles). Marks and
releases are written in groups by a background task: a kill -9 before one is written leaves a
claim, which the next process settles by lookup, never by sending blindly. Claims on rows that
were never sent (a stop, a budget) are released at the end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import LedgerWriteError
from ..results.status import Status
from .fingerprint import fingerprint, lead_key
from .store import Claim, ClaimState, Entry, Imported, Intent, Ledger

if TYPE_CHECKING:
    from ..mapping import Payload
    from ..results.journal import Result

logger = logging.getLogger("lsq_import")

ALREADY_IMPORTED = "already imported"
"""The ``error_type`` of a row skipped because the ledger lists its activity as imported."""
HELD = "held"
"""The ``error_type`` of a row another process kept claimed until the run's end."""

CHUNK = 32
FIRST_CHUNK = 64
"""The first group is claimed before the pool's first slot can be taken (a bulk batch at the
start would otherwise go out with the few rows claimed so far)."""
RECHECK = 0.5
MAX_SET_ASIDE = 1000
HEARTBEAT = 60.0
FLUSH = 0.25


@dataclass
class Stale:
    """A row whose activity a dead process claimed: what this run sends, what that one did."""

    payload: Payload
    intent: Intent
    previous: Intent


class RunLedger:
    """The ledger as one run uses it (see the module's docstring)."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        input: str,
        results: str,
        dedupe: str,
        token_field: str | None,
        token_of: Callable[[int], str],
        reimport: bool = False,
        hold_timeout: float = 60.0,
    ) -> None:
        self.ledger = ledger
        self.input = input
        self.results = results
        self.dedupe = dedupe
        self.token_field = token_field
        self._token_of = token_of
        self.reimport = reimport
        self.hold_timeout = hold_timeout
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ledger")
        self._claims: dict[int, Intent] = {}
        """Rows claimed and not settled yet -> their intent."""
        self._unknown: dict[bytes, int] = {}
        """Fingerprints of rows left ``unknown`` -> row (the claim is kept)."""
        self._marks: list[Imported] = []
        self._releases: list[bytes] = []
        self.stale: list[Stale] = []
        self.already_imported = 0
        self.held = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self.dedupe != "off"

    def intent(self, payload: Payload, *, token: str | None = None) -> Intent | None:
        fp = fingerprint(
            payload.key,
            payload.body,
            dedupe=self.dedupe,  # type: ignore[arg-type]  # the mapping's checked choice
            token_field=self.token_field,
        )
        if fp is None:
            return None
        return Intent(
            fp[0],
            lead_key(payload.key),
            self.input,
            payload.row,
            self.results,
            self._token_of(payload.row) if token is None else token,
            fp[1],
        )

    async def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: self._sync(method, *args, **kwargs))

    def _sync(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except self.ledger.errors as exc:
            raise LedgerWriteError(
                f"ledger {self.ledger.path}: cannot be written ({exc}); the rows it had "
                "claimed are settled by lookups when the next run meets them"
            ) from None

    # ---- the feed ---------------------------------------------------------------------------

    async def claimed(
        self,
        payloads: Iterator[Payload],
        skip: Callable[[Payload, str, str], None],
        fail: Callable[[Payload, str, str], None],
    ) -> AsyncIterator[Payload]:
        """The payloads of ``payloads`` this run may send, claimed; ``skip(payload,
        error_type, reason)`` records a row skipped, ``fail`` one recorded failed."""
        if self._task is None:
            self._task = asyncio.create_task(self._background())
        aside: list[tuple[Payload, Intent]] = []
        checked = time.monotonic()
        moved = time.monotonic()
        source = iter(payloads)
        ended = False
        first = True
        broke: Exception | None = None
        while not ended or aside:
            group: list[tuple[Payload, Intent]] = []
            if not ended:
                try:
                    for payload in source:
                        intent = self.intent(payload)
                        if intent is None:
                            yield payload
                            continue
                        group.append((payload, intent))
                        if len(group) >= (FIRST_CHUNK if first else CHUNK):
                            break
                    else:
                        ended = True
                except Exception as exc:  # the input broke off: send what was read, then stop
                    broke, ended, aside = exc, True, []
            now = time.monotonic()
            wait_for_aside = len(aside) >= MAX_SET_ASIDE or (ended and not group)
            if aside and (now - checked >= RECHECK or wait_for_aside):
                if wait_for_aside and now - checked < RECHECK:
                    await asyncio.sleep(RECHECK - (now - checked))
                group = aside + group
                before = len(aside)
                aside = []
                checked = time.monotonic()
            else:
                before = 0
            if not group:
                if broke is not None:
                    raise broke
                continue
            intents = [i for _, i in group]
            if first:
                # In this thread: no worker runs before the first rows are claimed.
                claims: list[Claim] = self._sync(self.ledger.claim, intents, reimport=self.reimport)
                first = False
            else:
                claims = await self._call(self.ledger.claim, intents, reimport=self.reimport)
            for (payload, intent), claim in zip(group, claims, strict=True):
                state = claim.state
                if state is ClaimState.CLAIMED:
                    self._claims[payload.row] = intent
                    yield payload
                elif state is ClaimState.IMPORTED:
                    assert claim.entry is not None
                    self.already_imported += 1
                    skip(payload, ALREADY_IMPORTED, claim.entry.reason())
                elif state is ClaimState.STALE:
                    previous = claim.previous
                    assert previous is not None
                    self._claims[payload.row] = intent
                    if (previous.results, previous.row) == (self.results, payload.row):
                        # The results file knows this row's attempt and settled it already.
                        yield payload
                    else:
                        self.stale.append(Stale(payload, intent, previous))
                else:
                    aside.append((payload, intent))
            if broke is not None:
                raise broke
            if len(aside) < before:
                moved = time.monotonic()
            if aside and ended and time.monotonic() - moved > self.hold_timeout:
                for payload, intent in aside:
                    self.held += 1
                    holder = self._holder_of(intent)
                    fail(
                        payload,
                        HELD,
                        f"this activity, or another row of its lead, is claimed by {holder}, "
                        "which had not settled it "
                        f"after {self.hold_timeout:g} s: the next run skips it (if it landed) "
                        "or sends it",
                    )
                aside = []
            if aside and ended:
                # Only rows held elsewhere are left: rows this run left unknown hold theirs
                # until its end, so those are failed now rather than waited for.
                mine = [(p, i) for p, i in aside if i.fingerprint in self._unknown]
                for payload, intent in mine:
                    self.held += 1
                    fail(
                        payload,
                        HELD,
                        f"the same activity as row {self._unknown[intent.fingerprint]}, whose "
                        "answer was lost: settled at the end of this run or by the next one",
                    )
                aside = [(p, i) for p, i in aside if i.fingerprint not in self._unknown]

    def _holder_of(self, intent: Intent) -> str:
        entry: Entry | None = self.ledger.lookup(intent.fingerprint)
        if entry is None or not entry.holder:
            return "another lsq-import process (a row of the same lead)"
        return entry.holder

    # ---- outcomes ---------------------------------------------------------------------------

    def settled(self, result: Result) -> None:
        """A row of this run has its outcome."""
        intent = self._claims.get(result.row)
        if intent is None:
            return
        if result.status is Status.SUCCESS:
            del self._claims[result.row]
            self._unknown.pop(intent.fingerprint, None)
            self._marks.append(Imported(intent, result.activity_id, result.lead_id))
        elif result.status is Status.UNKNOWN:
            self._unknown[intent.fingerprint] = result.row
        elif result.status is not Status.SENDING:
            del self._claims[result.row]
            self._unknown.pop(intent.fingerprint, None)
            self._releases.append(intent.fingerprint)

    def found(self, payload: Payload, activity_id: str, lead_id: str, *, token: str = "") -> None:
        """Reconciliation found the row's activity in LeadSquared: imported."""
        intent = self._claims.pop(payload.row, None) or self.intent(payload, token=token)
        if intent is None:
            return
        self._unknown.pop(intent.fingerprint, None)
        self._marks.append(Imported(intent, activity_id, lead_id))

    def found_stale(self, item: Stale, activity_id: str, lead_id: str) -> None:
        """A dead process's attempt was found in LeadSquared: imported, from its source."""
        self._claims.pop(item.payload.row, None)
        self._marks.append(Imported(item.previous, activity_id, lead_id))

    async def retarget(self, items: list[Stale]) -> None:
        """Stale claims found never landed: this run's attempt, before it is sent."""
        for item in items:
            self._claims[item.payload.row] = item.intent
        await self._call(self.ledger.retarget, [item.intent for item in items])

    def keep_claim(self, row: int) -> None:
        """A stale claim this run could not settle: left for the next process."""
        self._claims.pop(row, None)

    async def flush(self) -> None:
        marks, self._marks = self._marks, []
        releases, self._releases = self._releases, []
        if marks:
            await self._call(self.ledger.mark_imported, marks)
        if releases:
            await self._call(self.ledger.release, releases)

    async def _background(self) -> None:
        beat = time.monotonic()
        while True:
            await asyncio.sleep(FLUSH)
            await self.flush()
            if time.monotonic() - beat >= HEARTBEAT:
                beat = time.monotonic()
                await self._call(self.ledger.heartbeat)

    async def finish(self) -> None:
        """The run is over: write what is pending; release the claims of rows never sent
        (those left ``unknown`` stay claimed)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        unknown = set(self._unknown)
        for intent in self._claims.values():
            if intent.fingerprint not in unknown:
                self._releases.append(intent.fingerprint)
        self._claims.clear()
        await self.flush()

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.ledger.close()
