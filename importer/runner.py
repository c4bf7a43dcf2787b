"""``run_import``: the whole import as one library call, for the CLI, a notebook or a scheduler.

    from importer import run_import
    summary = run_import("leads.csv", "mappings/example.yaml", results="leads.results.csv")
    print(summary.to_text()); raise SystemExit(summary.exit_status)

Data flows one way: input file -> rows -> mapping -> payloads -> queue -> workers (key order,
pacer, client, error classes, retries) -> results journal -> summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .exceptions import ConfigError, InputFileError, ResultsFileError
from .exitcodes import ExitStatus
from .leadsquared.classify import Outcome
from .leadsquared.client import LeadSquaredClient, make_session
from .mapping import Mapping, Payload, RowError, RowSkipped, load_mapping
from .preflight import preflight
from .progress import Progress, estimate_rows
from .reader import Row, open_input
from .results.fingerprint import Fingerprints, check_resume
from .results.journal import (
    INVALID,
    SKIPPED,
    SUCCESS,
    UNKNOWN,
    Journal,
    Outcomes,
    Result,
    read_outcomes,
    utc_now,
)
from .results.lock import ResultsLock
from .results.report import read_report
from .sending.pacer import Pacer
from .sending.pool import WorkerPool
from .sending.retry import RetryPolicy
from .settings import ENV_HOST, Credentials, base_url, credentials_from_env, read_env_file
from .summary import Summary

logger = logging.getLogger("lsq_import")


def default_results_path(input_path: str | os.PathLike[str]) -> Path:
    """``leads.csv`` -> ``leads.results.csv`` in the current folder."""
    return Path(f"{Path(input_path).stem}.results.csv")


def run_import(
    input_path: str | os.PathLike[str],
    mapping: str | os.PathLike[str] | Mapping,
    *,
    results: str | os.PathLike[str] | None = None,
    host: str | None = None,
    credentials: Credentials | None = None,
    rate: int = 25,
    per: float = 5.0,
    concurrency: int | None = None,
    sandbox: bool = False,
    retry_unknown: bool = False,
    max_attempts: int = 5,
    timeout: float = 60.0,
    progress: bool = False,
    on_result: Callable[[Result], None] | None = None,
    sheet: str | int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    env_file: str | os.PathLike[str] | None = None,
    force_resume: bool = False,
    retry_delay: tuple[float, float] = (0.5, 30.0),
    max_calls: int | None = None,
    start_row: int | None = None,
    limit: int | None = None,
    preflight_check: bool = True,
) -> Summary:
    """Import every row of ``input_path`` and return the :class:`Summary`.

    ``host`` defaults to ``$LSQ_HOST``, then ``api.leadsquared.com``; ``credentials`` to
    ``$LSQ_ACCESS_KEY``/``$LSQ_SECRET_KEY`` (``env_file``, an environment file with those
    names, overrides the environment). With ``sandbox=True`` a local LeadSquared sandbox is
    started on loopback for the run and both are ignored.

    Rerunning with the same ``results`` file resumes: rows already ``success`` are skipped,
    and ``unknown`` ones too unless ``retry_unknown``. A resume with another input file or a
    changed mapping is refused unless ``force_resume``. One run at a time per results file.

    ``retry_delay`` is (base, cap) in seconds of the exponential backoff between attempts.
    ``max_calls`` is a budget of API calls for this run (retries included): the run stops
    cleanly before exceeding it (exit status ``BUDGET_REACHED``) and the next run continues.
    ``start_row`` and ``limit`` make a trial run: only rows numbered ``start_row`` or later,
    and at most ``limit`` of them (rows already done don't count). ``preflight_check`` first
    checks the mapping against the account's metadata (event code, fields, dropdown values;
    two or three calls) and raises :class:`PreflightError` before any row is sent.
    Raises :class:`importer.exceptions.ImporterError` subclasses for bad input or settings
    before anything is sent.
    """
    if rate < 1 or per <= 0:
        raise ConfigError(f"--rate {rate} --per {per}: rate must be >= 1 and per > 0")
    if concurrency is not None and concurrency < 1:
        raise ConfigError(f"--concurrency {concurrency}: must be at least 1")
    for name, value, low in (
        ("--max-calls", max_calls, 1),
        ("--start-row", start_row, 2),
        ("--limit", limit, 1),
    ):
        if value is not None and value < low:
            raise ConfigError(f"{name} {value}: must be at least {low}")
    the_mapping = mapping if isinstance(mapping, Mapping) else load_mapping(mapping)
    results_path = Path(results) if results is not None else default_results_path(input_path)
    retry = RetryPolicy(
        max_attempts=max_attempts, base_delay=retry_delay[0], max_delay=retry_delay[1]
    )
    with open_input(input_path, sheet=sheet, encoding=encoding, delimiter=delimiter) as source:
        the_mapping.check_columns(source.columns, str(input_path))
        target: str | None = None
        if not sandbox:
            env = {**os.environ, **(read_env_file(env_file) if env_file else {})}
            target = base_url(host or env.get(ENV_HOST))
            credentials = credentials or credentials_from_env(env)
        rows = source.rows()
        first = next(rows, None)
        if first is None:
            # An empty export is almost always an upstream failure: say so, don't report success.
            raise InputFileError(f"{input_path}: has a header but no data rows: nothing to import")
        if not results_path.parent.is_dir():
            raise ResultsFileError(
                f"{results_path}: the folder {str(results_path.parent)!r} does not exist"
            )
        with ResultsLock(results_path):
            previous = read_outcomes(results_path)
            fingerprints = Fingerprints.of(input_path, the_mapping.path)
            check_resume(results_path, fingerprints, started=len(previous) > 0, force=force_resume)
            journal = Journal(results_path)
            run = _Run(
                rows=itertools.chain([first], rows),
                mapping=the_mapping,
                journal=journal,
                previous=previous,
                summary=Summary(input=str(input_path), results=str(results_path)),
                bar=Progress(
                    total=estimate_rows(Path(input_path)) if progress else None,
                    enabled=progress,
                ),
                retry_unknown=retry_unknown,
                on_result=on_result,
                start_row=start_row or 0,
                limit=limit,
            )
            run.summary.fingerprints = {
                "input": fingerprints.input_digest,
                "mapping": fingerprints.mapping_digest,
            }
            started = time.monotonic()
            try:
                asyncio.run(
                    run.main(
                        target=target,
                        credentials=credentials,
                        pacer_settings=(rate, per),
                        concurrency=concurrency or rate,
                        retry=retry,
                        timeout=timeout,
                        max_calls=max_calls,
                        check_account=preflight_check,
                    )
                )
            except asyncio.CancelledError:
                # A second Ctrl-C abandoned the calls in flight; finalize marks them unknown.
                run.summary.stop_reason = "interrupted"
            finally:
                run.bar.close()
                run.summary.elapsed = time.monotonic() - started
                if journal.opened:
                    run.summary.by_status = journal.finalize()
                    run.summary.report = read_report(results_path)
        if run.summary.exit_status is ExitStatus.SUCCESS and not (start_row or limit):
            dataclasses.replace(fingerprints, complete=True).save(results_path)
    return run.summary


@dataclass
class _Run:
    """The state of one run, shared by the row feed, the pool callbacks and the summary."""

    rows: Iterator[Row]
    mapping: Mapping
    journal: Journal
    previous: Outcomes
    summary: Summary
    bar: Progress
    retry_unknown: bool
    on_result: Callable[[Result], None] | None
    start_row: int = 0
    limit: int | None = None

    def settled(self, result: Result) -> None:
        """A row has its outcome for this run (sent, or found invalid)."""
        self.summary.this_run[result.status] += 1
        self.bar.result(result)
        if self.on_result is not None:
            self.on_result(result)

    def rows_to_send(self) -> Iterator[Payload]:
        """Rows not done yet, mapped; invalid rows are recorded here and never sent."""
        taken = 0
        for row in self.rows:
            if row.number < self.start_row:
                continue
            before = self.previous.get(row.number)
            if before == SUCCESS:
                self.summary.already_done += 1
                self.bar.skipped()
                continue
            if before == UNKNOWN and not self.retry_unknown:
                self.summary.unknown_kept += 1
                self.bar.skipped()
                continue
            if self.limit is not None and taken >= self.limit:
                return
            taken += 1
            try:
                payload = self.mapping.build(row)
            except (RowError, RowSkipped) as exc:
                skipped = isinstance(exc, RowSkipped)
                result = Result(
                    row.number,
                    "",
                    SKIPPED if skipped else INVALID,
                    error_type="filtered" if skipped else "invalid row",
                    error_message=exc.reason if isinstance(exc, RowSkipped) else str(exc),
                    finished_at=utc_now(),
                )
                self.journal.record(result)
                self.settled(result)
                continue
            yield payload

    async def main(
        self,
        *,
        target: str | None,
        credentials: Credentials | None,
        pacer_settings: tuple[int, float],
        concurrency: int,
        retry: RetryPolicy,
        timeout: float,
        max_calls: int | None = None,
        check_account: bool = True,
    ) -> None:
        rate, per = pacer_settings
        async with contextlib.AsyncExitStack() as stack:
            if target is None:
                from .sandbox import Sandbox  # only --sandbox needs the server side

                credentials = Credentials(secrets.token_hex(16), secrets.token_hex(16))
                box = Sandbox(
                    access_key=credentials.access_key,
                    secret_key=credentials.secret_key,
                    rate=rate,
                    per=per,
                )
                await stack.enter_async_context(box)
                target = box.base_url
            assert credentials is not None
            # One connection per call in flight: a smaller pool would cap throughput at
            # connections / latency, below the rate limit at scaled limits.
            session = await stack.enter_async_context(
                make_session(credentials, timeout=timeout, connections=concurrency)
            )
            client = LeadSquaredClient(session, target)
            pacer = Pacer(rate, per)
            if check_account:
                # Before the journal exists: a mapping the account can't take costs no row.
                found = await preflight(client, self.mapping, pacer=pacer)
                logger.info("preflight: %s", found.to_text().replace("\n", "; "))
                self.summary.preflight_calls = pacer.calls
                if max_calls is not None:
                    max_calls = max(0, max_calls - pacer.calls)
            self.journal.open()
            pool = WorkerPool(
                sender=client,
                pacer=pacer,
                journal=self.journal,
                retry=retry,
                concurrency=concurrency,
                on_result=self.settled,
                max_calls=max_calls,
            )
            _handle_signals(pool, stack)
            try:
                await pool.run(self.rows_to_send())
            finally:
                summary = self.summary
                summary.calls = pool.pacer.calls - summary.preflight_calls
                summary.retries = pool.stats.retries
                summary.throttled = pool.pacer.throttled
                summary.stop_reason = pool.stats.stop_reason
                if pool.stats.fatal is not None:
                    summary.fatal_message = _fatal_message(pool.stats.fatal, target)


def _fatal_message(outcome: Outcome, target: str) -> str:
    if outcome.http_status == 401:
        return (
            f"LeadSquared refused the keys at {target} (HTTP 401 {outcome.error_type}): check "
            "LSQ_ACCESS_KEY/LSQ_SECRET_KEY and that --host is your account's regional host"
        )
    return (
        f"{target} answered HTTP {outcome.http_status} for the API path: check --host "
        "(e.g. api-in21.leadsquared.com)"
    )


def _handle_signals(pool: WorkerPool, stack: contextlib.AsyncExitStack) -> None:
    """First Ctrl-C/SIGTERM: finish calls in flight, then stop. Second: stop at once."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def first() -> None:
        if pool.stopping:
            if main is not None:
                main.cancel()
            return
        pool.stop("interrupted")

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, first)
        except (NotImplementedError, RuntimeError, ValueError):
            return  # not the main thread (e.g. a scheduler's worker thread): no handlers
        stack.callback(loop.remove_signal_handler, sig)
