"""Errors the API answers with, in OpenAI's error object, each with the right HTTP status."""

from __future__ import annotations

from collections.abc import Mapping


class ApiError(Exception):
    """A request the API refuses; ``message`` is written for the developer who sent it."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> dict:
        """OpenAI's ``{"error": {...}}`` object."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    """400: the request is malformed or asks for something this server cannot do."""
    return ApiError(400, message, param=param, code=code)


def unavailable(message: str, *, retry_after_seconds: int, code: str) -> ApiError:
    """503 with ``Retry-After``: the request is fine, the server cannot take it now."""
    return ApiError(
        503, message, kind="server_error", code=code, headers={"Retry-After": str(retry_after_seconds)}
    )
