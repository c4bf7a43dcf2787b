"""The LeadSquared boundary: the HTTP client, what an answer means, and how to connect.

- :mod:`.client`: one aiohttp session, keys in headers, answers parsed into ``ApiResponse``;
- :mod:`.classify`: the ordered table of error classes (status *and* body);
- :mod:`.connect`: host and keys (or a throwaway sandbox) into a connected client;
- :mod:`.scrub`: the keys hidden in whatever the server says back.
"""

from .classify import ApiResponse, Kind, Outcome, classify
from .client import LeadSquaredClient, TransportError, make_session
from .connect import Endpoint, connect, refused_message, resolve_endpoint

__all__ = [
    "ApiResponse",
    "Endpoint",
    "Kind",
    "LeadSquaredClient",
    "Outcome",
    "TransportError",
    "classify",
    "connect",
    "make_session",
    "refused_message",
    "resolve_endpoint",
]
