"""lsq-import: bulk-import CSV and Excel rows into LeadSquared."""

from __future__ import annotations

__version__ = "0.1.0"
