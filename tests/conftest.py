"""Shared fixtures: a sandbox on loopback in a thread, and slices of the sample data."""

from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from importer import Summary, run_import
from importer.sandbox import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, Sandbox, SandboxThread
from importer.settings import Credentials

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CSV = ROOT / "sample_data" / "leads.csv"
SAMPLE_XLSX = ROOT / "sample_data" / "leads.xlsx"
EXAMPLE_MAPPING = ROOT / "mappings" / "example.yaml"
SANDBOX_KEYS = Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test has its own per-user data directory (where the ledgers live by default), so
    no test sees another's imports, nor the developer's own; subprocesses inherit it."""
    data = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.delenv("LSQ_LEDGER", raising=False)
    return data


@pytest.fixture
def sandbox_thread() -> Iterator[Callable[..., Sandbox]]:
    """Start sandboxes with the given settings; all are stopped after the test."""
    threads: list[SandboxThread] = []

    def start(**kwargs) -> Sandbox:
        thread = SandboxThread(**kwargs)
        threads.append(thread)
        return thread.__enter__()

    yield start
    for thread in threads:
        thread.__exit__(None, None, None)


@pytest.fixture
def sample_rows(tmp_path: Path) -> Callable[[int], Path]:
    """Write the first ``n`` data rows of the sample CSV to a new file."""

    def make(n: int, name: str = "leads.csv") -> Path:
        with open(SAMPLE_CSV, newline="", encoding="utf-8-sig") as handle:
            records = list(csv.reader(handle))
        path = tmp_path / name
        with open(path, "w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows(records[: n + 1])
        return path

    return make


def import_into(sandbox: Sandbox, source: Path, results: Path, **kwargs: Any) -> Summary:
    """``run_import`` against a test sandbox with its keys, at the scaled limit of the
    end-to-end tests (100 calls per 1 s) unless the test says otherwise."""
    kwargs.setdefault("mapping", EXAMPLE_MAPPING)
    kwargs.setdefault("credentials", SANDBOX_KEYS)
    kwargs.setdefault("rate", 100)
    kwargs.setdefault("per", 1.0)
    mapping = kwargs.pop("mapping")
    return run_import(source, mapping, results=results, host=sandbox.base_url, **kwargs)


def read_results(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ---- PostgreSQL (team mode): one throwaway server per test session ----------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server on loopback (tests/postgres_server.py): skipped where
    none can be started, failed instead under ``$LSQ_TEST_REQUIRE_POSTGRES`` (.ci/run)."""
    from . import postgres_server as server

    try:
        with server.start() as url:
            yield url
    except server.Unavailable as exc:
        server.not_here(exc)


_schemas = itertools.count(1)


@pytest.fixture
def postgres_ledger(postgres_server: str) -> str:
    """A new, empty PostgreSQL ledger: its URL (a schema of its own on the session's server)."""
    return f"{postgres_server}?schema=t{os.getpid()}_{next(_schemas)}"


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_at(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty ledger of each backend: an SQLite file's path, a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite")
    return str(request.getfixturevalue("postgres_ledger"))
