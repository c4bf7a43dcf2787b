"""The account's metadata: paced metadata GETs, read as every call is sent.

Every GET goes through :class:`MetadataReader`: through the pacer, like every call, retried when
throttled or lost, a refusal of the keys or the host raised as :class:`FatalApiError` (exit 3).
The preflight (:mod:`importer.preflight`) reads through it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from .exceptions import FatalApiError
from .leadsquared.classify import ApiResponse, Kind, classify
from .leadsquared.client import LeadSquaredClient, TransportError
from .leadsquared.connect import refused_message
from .sending.attempt import attempt
from .sending.pacer import Pacer
from .sending.retry import RetryPolicy

__all__ = ["MetadataAnswer", "MetadataReader"]


# --------------------------------------------------------------------------------------------
# Paced metadata GETs


class MetadataAnswer(NamedTuple):
    """What a metadata GET came to: its kind, the JSON body, and a one-line description of a
    failure ("" on success)."""

    kind: Kind
    body: Any
    problem: str


class MetadataReader:
    """Metadata GETs: paced through ``pacer`` when given (so they take slots like any call,
    and throttling closes the window for everyone), retried when throttled or lost; a fatal
    answer (401, 404, a redirect) raises :class:`FatalApiError`. ``calls`` counts attempts."""

    def __init__(
        self,
        client: LeadSquaredClient,
        pacer: Pacer | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.pacer = pacer
        self.retry = retry or RetryPolicy(max_attempts=3)
        self.sleep = sleep
        self.calls = 0

    async def get(self, path: str, params: dict[str, str] | None = None) -> MetadataAnswer:
        """GET ``path``; its answer once it succeeded, failed for good or ran out of tries."""
        url = self.client.base_url + path
        attempts = 0
        while True:
            attempts += 1
            self.calls += 1
            found = await attempt(
                functools.partial(self.client.get, path, params),
                pacer=self.pacer,
                judge=_judge,
                lost=_no_answer,  # a GET is safe to repeat
            )
            kind = found.kind
            if kind is Kind.FATAL:
                raise FatalApiError(
                    refused_message(found.status, url, redirect_to=self.client.refused_redirect)
                )
            if kind in (Kind.SUCCESS, Kind.PERMANENT) or not self.retry.should_retry(
                kind, attempts
            ):
                return MetadataAnswer(kind, found.body, found.problem)
            delay = self.retry.delay(attempts, kind)
            if kind is Kind.RATE_LIMITED and self.pacer is None:
                delay = 5.0  # no pacer to close the window for us: wait one default window
            await self.sleep(delay)


class _Answer(NamedTuple):
    kind: Kind
    problem: str
    body: Any
    status: int | None


def _judge(answer: ApiResponse) -> _Answer:
    """Metadata answers are bare JSON (a list or object), not CreateCustom's envelope."""
    body = answer.body
    is_error = isinstance(body, dict) and str(body.get("Status", "")).lower() == "error"
    if answer.status == 200 and body is not None and not is_error:
        return _Answer(Kind.SUCCESS, "", body, answer.status)
    outcome = classify(answer)
    kind = outcome.kind if outcome.kind is not Kind.SUCCESS else Kind.PERMANENT
    what = " ".join(part for part in (outcome.error_type, outcome.error_message) if part)
    problem = f"answered HTTP {answer.status}{': ' + what if what else ''}"
    return _Answer(kind, problem, body, answer.status)


def _no_answer(exc: TransportError) -> _Answer:
    return _Answer(Kind.TRANSIENT, f"gave no answer ({exc})", None, None)
