"""LeadSquared's error envelope as plain data, so the account can refuse a call without HTTP."""

from __future__ import annotations

from typing import Any

__all__ = [
    "RECORD_FAULT_MESSAGE",
    "RECORD_FAULT_TYPE",
    "ApiError",
    "invalid_input",
    "mandatory_missing",
    "record_fault_error",
]

RECORD_FAULT_TYPE = "MXUnknownException"
"""The ExceptionType of a bulk record failed by the ``record_error`` fault. Not an input
error (``MXInvalidInputException`` says the record is wrong and sending it again fails
again): the record was fine and was not processed, as when the server gave up on it, so a
client may send it again."""
RECORD_FAULT_MESSAGE = "Record could not be processed (sandbox fault)"


class ApiError(Exception):
    """An error answered with the LeadSquared error envelope: an HTTP status and its body."""

    def __init__(self, status: int, exception_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.exception_type = exception_type
        self.message = message

    def envelope(self) -> dict[str, Any]:
        """The JSON body of the answer."""
        return {
            "Status": "Error",
            "ExceptionType": self.exception_type,
            "ExceptionMessage": self.message,
        }


def invalid_input(message: str, status: int = 500) -> ApiError:
    """LeadSquared's answer to a bad value: 500 (400 for a bad request shape)."""
    return ApiError(status, "MXInvalidInputException", message)


def mandatory_missing(message: str) -> ApiError:
    return ApiError(500, "MXMandatoryAttributeMissingException", message)


def record_fault_error() -> ApiError:
    """The record error of the ``record_error`` fault (its status is never sent: a bulk
    call's record errors sit in a 200 answer)."""
    return ApiError(500, RECORD_FAULT_TYPE, RECORD_FAULT_MESSAGE)
