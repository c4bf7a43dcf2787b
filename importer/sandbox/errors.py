"""LeadSquared's error envelope as plain data, so the account can refuse a call without HTTP."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "invalid_input", "mandatory_missing"]


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
