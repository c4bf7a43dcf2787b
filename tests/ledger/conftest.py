"""The fault suite's sandbox fixture, for the ledger's tests of several processes."""

from ..test_faults import faulty_sandbox  # noqa: F401 - a fixture, found by name
