"""HTTP errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`, never a traceback.

`APIError` is raised by route handlers for a request the server refuses; the handlers
installed by `install_error_handlers` turn it, FastAPI's validation errors, unknown routes,
malformed JSON and any unexpected exception into that JSON body with the right status.
Knows HTTP status codes and the error body; nothing about models.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llm.serve.protocol import ErrorInfo, ErrorResponse

__all__ = ["APIError", "error_response", "install_error_handlers"]

log = logging.getLogger("llm.serve")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class APIError(Exception):
    """A refused request: HTTP status plus an OpenAI error body."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers

    def body(self) -> ErrorResponse:
        return ErrorResponse(
            error=ErrorInfo(
                message=self.message, type=_TYPES.get(self.status, "server_error"), param=self.param, code=self.code
            )
        )


def error_response(err: APIError) -> JSONResponse:
    return JSONResponse(err.body().model_dump(), status_code=err.status, headers=err.headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(_from_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}; see GET /openapi.json for the API"
            return error_response(APIError(404, message, code="not_found"))
        code = "method_not_allowed" if exc.status_code == 405 else None
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return error_response(APIError(exc.status_code, message, code=code, headers=getattr(exc, "headers", None)))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        message = f"internal server error ({type(exc).__name__}); the server log has the details"
        return error_response(APIError(500, message, code="internal_error"))


def _from_validation(exc: RequestValidationError) -> APIError:
    """Malformed JSON is a 400; a body that parses but breaks the schema is a 422 naming the field."""
    errors = exc.errors()
    for err in errors:
        if err.get("type") == "json_invalid":
            detail = err.get("ctx", {}).get("error", "invalid JSON")
            return APIError(400, f"the request body is not valid JSON: {detail}", code="invalid_json")
    if not errors:
        return APIError(422, "the request does not match the API schema", code="invalid_value")
    parts, first = [], None
    for err in errors[:5]:
        loc = [str(x) for x in err.get("loc", ()) if x != "body"]
        name = ".".join(loc) or "body"
        first = first or name
        parts.append(f"{name}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return APIError(422, "invalid request: " + "; ".join(parts) + more, param=first, code="invalid_value")

