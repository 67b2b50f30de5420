"""The one error hierarchy of the client.

Every error is a :class:`LoracastError`. Those raised for an HTTP call carry the call
(:class:`RequestInfo`: method and URL); those the server answered carry its error envelope too
(``{"error": {"code", "message", "requestId", ...}}``, the same shape on the trainer and the
generators) and the HTTP status.

    LoracastError
    ├── ApiError                 the server answered with an error envelope (status >= 400)
    │   ├── BadRequestError      400 (bad_request, unsupported_parameter, ...)
    │   │   └── InvalidAdapterError   400 invalid_adapter: malformed, or for another base
    │   ├── UnauthorizedError    401 (missing or wrong bearer token)
    │   ├── ForbiddenError       403
    │   ├── NotFoundError        404 (not_found, model_not_found)
    │   ├── ConflictError        409
    │   ├── AdapterRevokedError  410 adapter_revoked (a rollback revoked the version)
    │   ├── PayloadTooLargeError 413
    │   ├── AdapterFailedError   422 adapter_failed
    │   └── ServerError          5xx
    ├── TransportError           no answer
    │   ├── RequestTimeoutError  (also a builtin TimeoutError)
    │   └── ConnectionFailedError (also a builtin ConnectionError)
    ├── ProtocolError            an answer that is not the documented shape
    ├── WaitTimeoutError         the fleet did not report a version active in time (also a TimeoutError)
    ├── VersionStateError        the version cannot become active: revoked, failed, or none published
    ├── VersionMismatchError     a generator reported another version or sha256 than the trainer's record
    └── AdapterInputError        local input the client refuses before sending (also a ValueError)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestInfo:
    """The HTTP call an error belongs to."""

    method: str
    url: str

    def __str__(self) -> str:
        return f"{self.method} {self.url}"


class LoracastError(Exception):
    """Base of every error the client raises. ``request`` is the call, when there was one."""

    def __init__(self, message: str, request: RequestInfo | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request

    def __str__(self) -> str:
        return self.message if self.request is None else f"{self.message} ({self.request})"


class ApiError(LoracastError):
    """The server answered ``status`` with its error envelope: ``code`` and ``message`` are the server's."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request: RequestInfo,
        request_id: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, request)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.param = param

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message} ({self.request})"


class BadRequestError(ApiError):
    """400: the request was refused; ``message`` (and ``param`` on generators) names the field."""


class InvalidAdapterError(BadRequestError):
    """400 ``invalid_adapter``: the adapter is malformed, or was trained for another base (the message names the tensor and both shapes)."""


class UnauthorizedError(ApiError):
    """401: the trainer's bearer token is missing or wrong."""


class ForbiddenError(ApiError):
    """403."""


class NotFoundError(ApiError):
    """404: no such run, version, model or route."""


class ConflictError(ApiError):
    """409."""


class AdapterRevokedError(ApiError):
    """410 ``adapter_revoked``: a rollback revoked the version that was named; retrying cannot help."""


class PayloadTooLargeError(ApiError):
    """413: the body is over the server's bound."""


class AdapterFailedError(ApiError):
    """422 ``adapter_failed``: the version's forward pass overflowed on the generator."""


class ServerError(ApiError):
    """5xx: the server (or the store behind it) failed; the request may be retried."""


class TransportError(LoracastError):
    """No HTTP answer came back."""


class RequestTimeoutError(TransportError, TimeoutError):
    """The server did not answer within the client's timeout (seconds)."""


class ConnectionFailedError(TransportError, ConnectionError):
    """The connection could not be made or broke off (refused, reset, DNS)."""


class ProtocolError(LoracastError):
    """An answer that is not the documented shape (not JSON, fields missing)."""


class WaitTimeoutError(LoracastError, TimeoutError):
    """The fleet did not report the version active within the timeout.

    ``states`` maps each generator URL to what it last reported (``active``, ``announced``,
    ``failed: <reason>``, ``unknown`` when it did not list the version, or the error it answered).
    """

    def __init__(self, message: str, states: Mapping[str, str]) -> None:
        super().__init__(message)
        self.states = dict(states)


class VersionStateError(LoracastError):
    """The version waited for cannot become active: the trainer reports it revoked or failed, or the run has none."""


class VersionMismatchError(LoracastError):
    """A generator served or reported another version or sha256 than the trainer's record of the version asked for."""

    def __init__(
        self,
        message: str,
        expected: tuple[int, str],
        got: tuple[int | None, str | None],
        request: RequestInfo | None = None,
    ) -> None:
        super().__init__(message, request)
        self.expected = expected
        self.got = got


class AdapterInputError(LoracastError, ValueError):
    """Local input the client refuses before any request: a tensor whose bytes do not fit its shape, a folder without the PEFT files."""


_BY_CODE: dict[str, type[ApiError]] = {
    "invalid_adapter": InvalidAdapterError,
    "unauthorized": UnauthorizedError,
    "forbidden": ForbiddenError,
    "not_found": NotFoundError,
    "model_not_found": NotFoundError,
    "conflict": ConflictError,
    "adapter_revoked": AdapterRevokedError,
    "payload_too_large": PayloadTooLargeError,
    "adapter_failed": AdapterFailedError,
}

_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    410: AdapterRevokedError,
    413: PayloadTooLargeError,
    422: AdapterFailedError,
}


def error_from_response(status: int, body: bytes, request: RequestInfo) -> ApiError:
    """The typed error for an error answer: by the envelope's ``code``, else by ``status``.

    A body that is not the envelope (a proxy's HTML page, empty) still gives an error of the
    status's class, with code ``http_<status>`` and the body's first 200 characters as message.
    """
    code, message, request_id, param = f"http_{status}", "", None, None
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    envelope = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(envelope, dict) and isinstance(envelope.get("code"), str):
        code = envelope["code"]
        message = str(envelope.get("message", ""))
        rid, prm = envelope.get("requestId"), envelope.get("param")
        request_id = rid if isinstance(rid, str) else None
        param = prm if isinstance(prm, str) else None
    else:
        message = body[:200].decode("utf-8", "replace") or f"HTTP {status} with an empty body"
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(status, code, message, request, request_id, param)
