"""lsq-import: bulk-import CSV and Excel rows into LeadSquared."""

from __future__ import annotations

__version__ = "0.1.0"

from .exitcodes import ExitStatus  # noqa: E402
from .runner import run_import  # noqa: E402
from .summary import Summary  # noqa: E402

__all__ = ["ExitStatus", "Summary", "__version__", "run_import"]
