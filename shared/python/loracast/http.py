"""JSON and multipart calls over ``http.client``: every failure becomes a typed :mod:`loracast.errors` error."""

from __future__ import annotations

import http.client
import json
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import (
    ConnectionFailedError,
    ProtocolError,
    RequestInfo,
    RequestTimeoutError,
    error_from_response,
)

#: Seconds each socket operation of a call may wait (connecting, each send, each read), unless the
#: caller says otherwise: a server that keeps sending slowly can take longer in all.
DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Response:
    """A successful answer: status, headers (lowercase names) and the parsed JSON body."""

    status: int
    headers: Mapping[str, str]
    body: Any
    request: RequestInfo


@dataclass(frozen=True)
class FilePart:
    """One file of a multipart/form-data body: the form field, its file name and bytes."""

    field: str
    filename: str
    data: bytes


def encode_multipart(parts: list[FilePart]) -> tuple[bytes, str]:
    """The body and ``content-type`` of a multipart/form-data request holding ``parts`` (RFC 7578)."""
    boundary = f"loracast-{uuid.uuid4().hex}"
    chunks: list[bytes] = []
    for p in parts:
        chunks.append(
            f'--{boundary}\r\ncontent-disposition: form-data; name="{p.field}"; filename="{p.filename}"\r\n'
            "content-type: application/octet-stream\r\n\r\n".encode()
        )
        chunks.append(p.data)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


class HttpClient:
    """Calls one server at ``base_url``, with an optional bearer ``token`` and a timeout in seconds."""

    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def get(self, path: str, timeout_s: float | None = None) -> Response:
        """``GET path``; raises an :class:`~loracast.errors.ApiError` for an error answer."""
        return self.call("GET", path, None, {}, timeout_s)

    def post_json(self, path: str, body: Any, timeout_s: float | None = None) -> Response:
        """``POST path`` with a JSON body."""
        data = json.dumps(body).encode()
        return self.call("POST", path, data, {"content-type": "application/json"}, timeout_s)

    def post_files(self, path: str, parts: list[FilePart], timeout_s: float | None = None) -> Response:
        """``POST path`` with a multipart/form-data body of files."""
        data, content_type = encode_multipart(parts)
        return self.call("POST", path, data, {"content-type": content_type}, timeout_s)

    def call(
        self,
        method: str,
        path: str,
        data: bytes | None,
        headers: Mapping[str, str],
        timeout_s: float | None,
    ) -> Response:
        """One request; the JSON answer, or a typed error (API, timeout, connection, protocol)."""
        info = RequestInfo(method, f"{self.base_url}{path}")
        all_headers = {"accept": "application/json", **headers}
        if self.token is not None:
            all_headers["authorization"] = f"Bearer {self.token}"
        timeout = self.timeout_s if timeout_s is None else timeout_s
        url = urllib.parse.urlsplit(info.url)
        connection = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = connection(url.hostname or "", url.port, timeout=timeout)
        try:
            try:
                conn.request(method, f"{url.path}?{url.query}" if url.query else url.path, data, all_headers)
            except (BrokenPipeError, ConnectionResetError):
                # A server refusing an upload (bad token, bad header, too large) answers before it has
                # read the body and closes: its answer is still there to read, and says why.
                pass
            res = conn.getresponse()
            status, raw = res.status, res.read()
            res_headers = {k.lower(): v for k, v in res.getheaders()}
        except (OSError, TimeoutError, http.client.HTTPException) as e:
            raise _transport_error(e, info, timeout) from e
        finally:
            conn.close()
        if status >= 400:
            raise error_from_response(status, raw, info)
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise ProtocolError(f"answer {status} is not JSON: {raw[:200]!r}", info) from None
        return Response(status, res_headers, parsed, info)


def field(body: Any, key: str, request: RequestInfo) -> Any:
    """``body[key]`` of a JSON answer; ``ProtocolError`` naming the key when the answer lacks it."""
    if not isinstance(body, dict) or key not in body:
        raise ProtocolError(f"answer has no field {key!r}: {str(body)[:200]}", request)
    return body[key]


def _transport_error(
    reason: object, info: RequestInfo, timeout: float
) -> RequestTimeoutError | ConnectionFailedError:
    if isinstance(reason, TimeoutError):
        return RequestTimeoutError(f"no answer within {timeout} s", info)
    return ConnectionFailedError(f"connection failed: {reason}", info)
