"""What a mapping means, as digests: the validated model, not the file's bytes.

A results file records these (see ``importer/results/fingerprint.py``) so that a resume can
tell an edit that changes nothing sent (a comment, the shorthand ``FirstName: first_name``
written out as ``{column: first_name}``, keys reordered, a default written explicitly) from
one that changes what rows become, and name the keys that changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .schema import MappingFile

# Keys are digested down to this depth ("lead.attributes.FirstName"), and at most this many:
# a mapping with more falls back to one level less ("lead.attributes"), so what a results
# file's metadata holds stays small whatever the mapping.
KEY_DEPTH = 3
MAX_KEYS = 200


@dataclass(frozen=True)
class MappingMeaning:
    digest: str
    """``sha256:<hex>`` of the normalised model."""
    keys: dict[str, str] = field(default_factory=dict)
    """Dotted key -> a short digest of what it holds, to name the keys that changed."""


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _short(value: Any) -> str:
    return hashlib.sha256(_canonical(value)).hexdigest()[:16]


def _leaves(tree: Any, depth: int, prefix: str = "") -> dict[str, str]:
    if not isinstance(tree, dict) or depth == 0:
        return {prefix: _short(tree)}
    found: dict[str, str] = {}
    for key, value in tree.items():
        found.update(_leaves(value, depth - 1, f"{prefix}.{key}" if prefix else str(key)))
    return found


def meaning_of(model: MappingFile) -> MappingMeaning:
    """The digests of a validated mapping. Keys left at their defaults are left out, so
    writing a default explicitly (``required: false``) changes nothing; dictionary order is
    ignored (LeadSquared reads the fields of a call by name), list order is not."""
    tree = model.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    digest = f"sha256:{hashlib.sha256(_canonical(tree)).hexdigest()}"
    depth = KEY_DEPTH
    keys = _leaves(tree, depth)
    while len(keys) > MAX_KEYS and depth > 1:
        depth -= 1
        keys = _leaves(tree, depth)
    return MappingMeaning(digest, keys)
