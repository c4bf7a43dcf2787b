"""A local LeadSquared sandbox: an aiohttp server on loopback that behaves like the real API.

Why: users try a mapping against it before touching a real account, and our end-to-end tests
and benchmarks run against it. So it is strict where LeadSquared is strict (authentication,
the rolling-window rate limit, input validation) and it records every call so a test can
assert what the client did, e.g. that it never exceeded the rate limit. It stands alone, like
a separate service: nothing here imports the importer's sending, results or runner code.

One concern per module:

- :mod:`.schema` - :class:`SandboxSchema`, what the account knows (lead fields, activity
  types), its defaults and the checks of a schema file;
- :mod:`.account` - :class:`SandboxAccount`, the emulated account without HTTP: request
  validation, the lead store and its upsert by ``SearchBy``, activities, metadata answers,
  the bulk upsert and bulk activities (per-record answers), and the read answers (leads by
  e-mail, phone or any field; a lead's activities, paged);
- :mod:`.errors` - :class:`ApiError`, LeadSquared's error envelope as a status and a body;
- :mod:`.faults` - :class:`FaultConfig` (``--faults``, ``read_lag`` included), :data:`FAULTS`
  and the seeded :class:`FaultDraws`;
- :mod:`.server` - :class:`Sandbox`, the aiohttp app: endpoints, keys, the rate windows
  (ordinary and bulk), latency, fault injection and :class:`CallRecord`;
- :mod:`.thread` - :class:`SandboxThread` for sync callers and :func:`serve` for the shell.

Usage from a test or a benchmark (sync code)::

    from importer.sandbox import SandboxThread
    with SandboxThread(rate=5, per=1.0) as sandbox:
        run_import("leads.csv", "mapping.yaml", host=sandbox.base_url, rate=5, per=1.0,
                   credentials=Credentials("sandbox-access-key", "sandbox-secret-key"))
    assert sandbox.max_in_window() <= 5

With faults, e.g. for a fault test (the same seed and call order give the same faults)::

    faults = FaultConfig.from_spec("drop_after=0.05,error_500_plain=0.1,seed=7")
    with SandboxThread(rate=20, per=0.2, faults=faults) as sandbox: ...
    [c.fault for c in sandbox.calls]        # which call got which fault
    sandbox.duplicate_leads()               # leads a racy upsert doubled

From async code: ``async with Sandbox() as sandbox: ...``. From the shell:
``lsq-import sandbox`` (see :func:`serve`), then point the importer at
``http://127.0.0.1:8787`` with the default keys ``sandbox-access-key``/``sandbox-secret-key``
(a run with no keys exported finds them itself: ``GET /_sandbox/info`` says the sandbox takes
them, see :func:`importer.leadsquared.connect.standing_sandbox`).
"""

from __future__ import annotations

from .account import SandboxAccount
from .errors import RECORD_FAULT_MESSAGE, RECORD_FAULT_TYPE, ApiError
from .faults import FAULTS, FaultConfig, FaultDraws
from .schema import SandboxSchema
from .server import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    CallRecord,
    RedirectedRecord,
    Sandbox,
)
from .thread import SandboxThread, serve

__all__ = [
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_SECRET_KEY",
    "FAULTS",
    "RECORD_FAULT_MESSAGE",
    "RECORD_FAULT_TYPE",
    "ApiError",
    "CallRecord",
    "RedirectedRecord",
    "FaultConfig",
    "FaultDraws",
    "Sandbox",
    "SandboxAccount",
    "SandboxSchema",
    "SandboxThread",
    "serve",
]
