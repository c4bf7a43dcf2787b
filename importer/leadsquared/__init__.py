"""The LeadSquared boundary: the HTTP client, what an answer means, and how to connect.

- :mod:`.client`: one aiohttp session, keys in headers, answers parsed into ``ApiResponse``;
- :mod:`.classify`: the ordered table of error classes (status *and* body);
- :mod:`.connect`: host and keys (or a throwaway sandbox) into a connected client;
- :mod:`.lookup`: :class:`Lookups`, leads by their SearchBy value and their activities, paced,
  budgeted and retried like any call;
- :mod:`.scrub`: the keys hidden in whatever the server says back.

The names of :mod:`.lookup` are imported on first use: it sends through
:mod:`importer.sending`, which imports this package's classify and client modules.
"""

from typing import TYPE_CHECKING, Any

from .classify import ApiResponse, Kind, Outcome, classify
from .client import LeadSquaredClient, TransportError, make_session
from .connect import Endpoint, connect, refused_message, resolve_endpoint

if TYPE_CHECKING:
    from .lookup import BudgetExhausted, FoundActivity, LookupFailed, Lookups

_LOOKUP_NAMES = frozenset({"BudgetExhausted", "FoundActivity", "LookupFailed", "Lookups"})

__all__ = [
    "ApiResponse",
    "BudgetExhausted",
    "Endpoint",
    "FoundActivity",
    "Kind",
    "LeadSquaredClient",
    "LookupFailed",
    "Lookups",
    "Outcome",
    "TransportError",
    "classify",
    "connect",
    "make_session",
    "refused_message",
    "resolve_endpoint",
]


def __getattr__(name: str) -> Any:
    if name not in _LOOKUP_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import lookup

    return getattr(lookup, name)
