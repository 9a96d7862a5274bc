"""Finance OData errors as types, and the bodies the real service answers with (apis.md §7)."""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import JSONResponse, Response

WRITE_EXCEPTION = "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"
ODATA_EXCEPTION = "Microsoft.OData.ODataException"


class FinanceError(Exception):
    """An error the service reports to the client; ``response()`` renders the real body shape."""

    status = 400
    error_type = ODATA_EXCEPTION

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def body(self) -> dict[str, Any]:
        return {"error": {"code": "", "message": "An error has occurred.",
                          "innererror": {"message": self.message, "type": self.error_type, "stacktrace": ""}}}

    def response(self) -> Response:
        return JSONResponse(self.body(), self.status)


class BadRequest(FinanceError):
    """Malformed URL, query option or body (the OData layer refuses it before any X++ runs)."""


class NotFound(FinanceError):
    status = 404

    def body(self) -> dict[str, Any]:
        return {"error": {"code": "", "message": self.message}}


class NoResource(FinanceError):
    """An unknown route: Web API's own shape, not OData's."""

    status = 404

    def body(self) -> dict[str, Any]:
        return {"Message": self.message}


class Unauthorized(FinanceError):
    status = 401

    def body(self) -> dict[str, Any]:
        return {"error": {"code": "", "message": "Authorization has been denied for this request."}}


class PreconditionFailed(FinanceError):
    status = 412

    def body(self) -> dict[str, Any]:
        return {"error": {"code": "", "message": "An error has occurred.",
                          "innererror": {"message": self.message, "type": "Microsoft.OData.ODataException",
                                         "stacktrace": ""}}}


class MethodNotAllowed(FinanceError):
    status = 405

    def body(self) -> dict[str, Any]:
        return {"Message": self.message}


class WriteFailed(FinanceError):
    """X++ validation refused the row: the AxODataWriteException with its infolog.

    The real service has been seen answering these with 500; the emulator answers 400 by default so a
    client can tell a refused row from a server fault (``write_error_status`` option changes it).
    """

    error_type = WRITE_EXCEPTION

    def __init__(self, aot_name: str, infolog: list[str], status: int = 400) -> None:
        text = " ".join(infolog)
        super().__init__(f"Write failed for table row of type '{aot_name}'. Infolog: {text}", status)
        self.infolog = infolog


def throttled_response(retry_after: float) -> Response:
    """429 in Finance's shape (service protection, user-based limits)."""
    seconds = max(1, math.ceil(retry_after))
    body = {"error": {"code": "", "message": "An error has occurred.", "innererror": {
        "message": "This request could not be processed at this time due to system experiencing high "
                   "resource utilization. Retry the request after the time specified in the Retry-After header.",
        "type": "Microsoft.Dynamics.Platform.Integration.Services.OData.ThrottledException", "stacktrace": ""}}}
    return JSONResponse(body, 429, headers={"Retry-After": str(seconds)})


def fault_response(status: int) -> Response:
    """An injected 5xx in the shape IIS/the AOS gives when it is unhealthy."""
    body = {"error": {"code": "", "message": "An error has occurred.", "innererror": {
        "message": "The service is temporarily unavailable.", "type": "System.Exception", "stacktrace": ""}}}
    return JSONResponse(body, status)
