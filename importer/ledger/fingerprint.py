"""What makes two rows the same activity, as the ledger compares them.

A row's **fingerprint** is a digest of its lead key (the SearchBy value, normalised as the
worker pool compares keys: case and spaces ignored, a phone number by its digits) and of the
activity it posts: event code, date-time (UTC, as sent), note and fields, nested custom field
sets included. The row token (``options.row_token``) is left out: it differs per results file
by design, while the activity is the same. What counts is the mapping's ``options.dedupe``:

* ``activity`` (the default): the lead key and the activity. A row whose activity was imported
  already is skipped even when its lead attributes changed since.
* ``payload``: the lead attributes too. A row whose activity was imported but whose lead
  attributes differ from those of that import is sent again (it updates the lead, and posts its
  activity again); a row identical to the imported one is skipped. The ledger keeps the
  activity fingerprint as its key in every mode, and the lead attributes' digest beside it.
* ``off``: no fingerprint; the ledger is not consulted for the mapping's rows.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from ..sending.pool import ordering_key

Dedupe = Literal["activity", "payload", "off"]
DEDUPE_CHOICES: tuple[str, ...] = ("activity", "payload", "off")


def _text(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


def _entries(items: list[dict[str, Any]], name_key: str, leave_out: str | None) -> list[Any]:
    """``items`` (activity fields by ``SchemaName``, or lead attributes by ``Attribute``) by
    name, in a stable order, without ``leave_out``; a custom field set by its own fields."""
    out: list[Any] = []
    for item in items:
        name = str(item.get(name_key, ""))
        if name == leave_out:
            continue
        if "Fields" in item:
            nested = _entries(item["Fields"], "SchemaName", None)
            out.append([name, _text(item.get("Value")), nested])
        else:
            out.append([name, _text(item.get("Value"))])
    return sorted(out)  # [name, value] or [name, value, [fields]]: comparable as lists


def lead_key(key: str) -> str:
    """The lead key the ledger files a row under (and ``ledger show KEY`` looks up)."""
    return ordering_key(key)


def fingerprint(
    key: str, body: dict[str, Any], *, dedupe: Dedupe = "activity", token_field: str | None = None
) -> tuple[bytes, bytes | None] | None:
    """The row's activity fingerprint (16 bytes) and, with ``dedupe="payload"``, the digest
    of its lead attributes (else None); None with ``dedupe="off"``. ``key`` is the payload's
    SearchBy value, ``body`` its request body, ``token_field`` the mapping's row token field
    (left out). The activity fingerprint is the ledger's key whatever the mode, so a mapping
    that changes its mode still finds what was imported before."""
    if dedupe == "off":
        return None
    activity = body.get("Activity") or {}
    parts: list[Any] = [
        lead_key(key),
        _text(activity.get("ActivityEvent")),
        _text(activity.get("ActivityDateTime")),
        _text(activity.get("ActivityNote")),
        _entries(activity.get("Fields") or [], "SchemaName", token_field),
    ]
    lead = None
    if dedupe == "payload":
        lead = _digest(_entries(body.get("LeadDetails") or [], "Attribute", "SearchBy"))
    return _digest(parts), lead


def _digest(parts: list[Any]) -> bytes:
    text = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).digest()
