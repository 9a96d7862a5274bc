"""Dataverse Web API errors as types, each with the real status, code and message text.

Codes and texts follow Microsoft's published error reference (data-service error codes,
"Web API client errors", upsert and conditional-operation pages); see
/work/shared/reference/apis.md §4.7. Body shape: ``{"error": {"code": "0x...", "message": "..."}}``.
"""

from __future__ import annotations

from typing import Any


class DataverseError(Exception):
    status = 400
    code = ""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(DataverseError):
    status, code = 400, "0x80060888"


class MessageNotSupported(DataverseError):
    """SdkEntityDoesNotSupportMessage: the table doesn't take this message (not every standard table
    takes CreateMultiple / UpsertMultiple). The code and text are the platform's; the HTTP status
    is not documented, 400 is assumed."""

    status, code = 400, "0x80040800"

    def __init__(self, message_name: str, logical_name: str) -> None:
        super().__init__(f"The '{message_name}' method does not support entities of type '{logical_name}'. "
                         "MessageProcessorCache returned MessageProcessor.Empty.")


class ResourceNotFound(DataverseError):
    """An unknown entity set or path segment."""

    status, code = 404, "0x8006088a"

    def __init__(self, segment: str) -> None:
        super().__init__(f"Resource not found for the segment '{segment}'.")


class RecordNotFound(DataverseError):
    status, code = 404, "0x80040217"


class ValidationError(DataverseError):
    status, code = 400, "0x80044331"


class RequiredMissing(DataverseError):
    status, code = 400, "0x80040200"


class PreconditionFailed(DataverseError):
    status, code = 412, "0x80060882"


class AlreadyExists(DataverseError):
    status, code = 412, "0x80040237"

    def __init__(self) -> None:
        super().__init__("A record with matching key values already exists.")


class DuplicateKey(DataverseError):
    status, code = 412, "0x80060892"


class MethodNotAllowed(DataverseError):
    status, code = 405, "0x80060888"


class ChangeTrackingExpired(DataverseError):
    """The delta token is older than the retained change history: the client must re-read everything."""

    status, code = 400, "0x80044352"

    def __init__(self) -> None:
        super().__init__("The change tracking token has expired. Perform a full sync to get a new token "
                         "(the version stamp is associated with a change tracking history that has been cleaned up).")


class Unauthorized(DataverseError):
    status, code = 401, ""


def unknown_property(name: str, type_name: str) -> BadRequest:
    return BadRequest(f"The property '{name}' does not exist on type '{type_name}'. "
                      "Make sure to only use property names that are defined by the type.")


def unknown_select(name: str, type_name: str) -> BadRequest:
    return BadRequest(f"Could not find a property named '{name}' on type '{type_name}'.")


def invalid_key(type_name: str) -> BadRequest:
    return BadRequest(f"The key in the request URI is not valid for resource '{type_name}'. Ensure that the "
                      f"names and number of key properties match the declared or alternate key properties "
                      f"for the resource '{type_name}'.")


def not_found_by_id(logical: str, record_id: str) -> RecordNotFound:
    return RecordNotFound(f"{logical} With Id = {record_id} Does Not Exist")


def not_found_by_key(logical: str, key_values: dict[str, Any]) -> RecordNotFound:
    shown = ",".join(f"{k}:{v}" for k, v in key_values.items())
    return RecordNotFound(f"A record with the specified key values does not exist in {logical} entity "
                          f"(key values: {shown})")


def too_long(column: str, logical: str, max_length: int) -> ValidationError:
    return ValidationError(f"A validation error occurred. The length of the '{column}' attribute of the "
                           f"'{logical}' entity exceeded the maximum allowed length of '{max_length}'.")


def bad_option(column: str, logical: str, value: Any, options: tuple[int, ...]) -> ValidationError:
    return ValidationError(f"A validation error occurred. The value {value} of '{column}' on record of type "
                           f"'{logical}' is outside the valid range. Accepted Values: "
                           + ",".join(str(o) for o in options), code="0x8004431a")


def type_mismatch(value: Any, edm_type: str) -> BadRequest:
    return BadRequest(f"Cannot convert the literal '{value}' to the expected type '{edm_type}'.")


def version_mismatch() -> PreconditionFailed:
    return PreconditionFailed("The version of the existing record doesn't match the RowVersion property provided.")


def track_changes_not_supported(option: str) -> BadRequest:
    return BadRequest(f'The "${option}" query parameter isn\'t supported when Change Tracking is enabled.')
