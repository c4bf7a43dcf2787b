"""Hiding the keys in whatever the server (or the network stack) says back.

A server, proxy or attacker may echo the request headers in an error message ("invalid
request, headers: x-LSQ-SecretKey: ..."); from there the text would reach the results file,
``--summary-json``, the log and the HTML report. The client passes every such text through a
:class:`Scrubber` before anything else sees it: the raw body (before JSON parsing, and the
parsed values again, for escapes the raw forms do not cover), the ``Location`` of a redirect
and the text of a transport exception (which may quote URLs or headers).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

HIDDEN = "<hidden>"


def _forms(secret: str) -> set[str]:
    """The ways ``secret`` can appear in a body: as it is, JSON-escaped (with or without
    ``\\u`` escapes and ``\\/``), HTML-escaped and URL-encoded."""
    as_json = json.dumps(secret)[1:-1]
    as_utf8_json = json.dumps(secret, ensure_ascii=False)[1:-1]
    return {
        secret,
        as_json,
        as_utf8_json,
        as_json.replace("/", "\\/"),
        as_utf8_json.replace("/", "\\/"),
        html.escape(secret),
        html.escape(secret, quote=False),
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }


class Scrubber:
    """Replaces every occurrence of the given secrets with :data:`HIDDEN`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms |= _forms(secret)
        # Longest first, so that a form containing a shorter one is replaced whole.
        ordered = sorted(forms, key=len, reverse=True)
        # Case-insensitive: a proxy that re-cases echoed header values must not reveal a key.
        self._pattern = (
            re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE) if ordered else None
        )

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        """``text`` with every secret hidden."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(HIDDEN, text)

    def value(self, value: Any) -> Any:
        """A parsed JSON value with every secret hidden in its strings (keys included)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        return value
