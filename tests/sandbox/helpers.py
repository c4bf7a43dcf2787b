"""Shared helpers of the sandbox tests: a client for one sandbox, and CreateCustom bodies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from importer.sandbox import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, Sandbox

CREATE = "/v2/ProspectActivity.svc/CreateCustom"
AUTH = {"x-LSQ-AccessKey": DEFAULT_ACCESS_KEY, "x-LSQ-SecretKey": DEFAULT_SECRET_KEY}


class FakeClock:
    """A clock the test moves by hand, so rate-limit windows need no sleeping."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def body(
    email: str = "a@example.com",
    *,
    lead: list[dict[str, Any]] | None = None,
    search_by: str = "EmailAddress",
    activity: dict[str, Any] | None = None,
    **root: Any,
) -> dict[str, Any]:
    details = [{"Attribute": "EmailAddress", "Value": email}]
    details += lead or []
    details.append({"Attribute": "SearchBy", "Value": search_by})
    act = {
        "ActivityEvent": 105,
        "ActivityNote": "imported",
        "ActivityDateTime": "2024-05-01 09:30:00",
        "Fields": [
            {"SchemaName": "mx_Custom_1", "Value": "1499.00"},
            {"SchemaName": "mx_Custom_2", "Value": "Widget Pro"},
        ],
    }
    if activity is not None:
        act = activity
    return {"LeadDetails": details, "Activity": act, **root}


def run(
    fn: Callable[[Sandbox, aiohttp.ClientSession], Awaitable[None]], **sandbox_kwargs: Any
) -> Sandbox:
    """Start a sandbox, run ``fn(sandbox, session)`` against it, stop it; return the sandbox."""

    async def main() -> Sandbox:
        async with (
            Sandbox(**sandbox_kwargs) as sandbox,
            aiohttp.ClientSession(base_url=sandbox.base_url) as session,
        ):
            await fn(sandbox, session)
        return sandbox

    return asyncio.run(main())


async def post(
    session: aiohttp.ClientSession, payload: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with session.post(
        CREATE, json=payload, headers=AUTH if headers is None else headers
    ) as r:
        return r.status, await r.json(content_type=None)


def assert_error(status: int, data: Any, want_status: int, want_type: str) -> str:
    assert status == want_status, data
    assert data["Status"] == "Error"
    assert data["ExceptionType"] == want_type
    return data["ExceptionMessage"]
