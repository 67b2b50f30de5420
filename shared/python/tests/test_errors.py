"""Error parsing and transport errors (no loracast server: local sockets only)."""

from __future__ import annotations

import socket
import threading
import unittest

from loracast import (
    AdapterRevokedError,
    ApiError,
    ConnectionFailedError,
    GeneratorClient,
    InvalidAdapterError,
    LoracastError,
    NotFoundError,
    RequestInfo,
    RequestTimeoutError,
    ServerError,
    TrainerClient,
    UnauthorizedError,
)
from loracast.errors import BadRequestError, error_from_response

REQ = RequestInfo("POST", "http://127.0.0.1:1/v1/runs/r/adapters")


class ErrorFromResponseTest(unittest.TestCase):
    def test_trainer_envelope(self) -> None:
        body = b'{"error":{"code":"invalid_adapter","message":"lora_A: shape [8, 64], base expects [8, 896]","requestId":"r-1"}}'
        e = error_from_response(400, body, REQ)
        self.assertIsInstance(e, InvalidAdapterError)
        self.assertIsInstance(e, BadRequestError)
        self.assertEqual((e.status, e.code, e.request_id, e.param), (400, "invalid_adapter", "r-1", None))
        self.assertEqual(e.message, "lora_A: shape [8, 64], base expects [8, 896]")
        self.assertIs(e.request, REQ)
        self.assertEqual(str(e), f"400 invalid_adapter: {e.message} (POST {REQ.url})")

    def test_generator_envelope_with_param(self) -> None:
        body = b'{"error":{"code":"unsupported_parameter","message":"tools is not supported","type":"invalid_request_error","param":"tools","requestId":null}}'
        e = error_from_response(400, body, REQ)
        self.assertIs(type(e), BadRequestError)
        self.assertEqual((e.code, e.param, e.request_id), ("unsupported_parameter", "tools", None))

    def test_codes_pick_the_class(self) -> None:
        for status, code, cls in [
            (401, "unauthorized", UnauthorizedError),
            (404, "model_not_found", NotFoundError),
            (410, "adapter_revoked", AdapterRevokedError),
            (503, "store_unavailable", ServerError),
            (418, "teapot", ApiError),
        ]:
            with self.subTest(code):
                e = error_from_response(status, f'{{"error":{{"code":"{code}","message":"m"}}}}'.encode(), REQ)
                self.assertIs(type(e), cls)
                self.assertEqual(e.code, code)

    def test_a_body_that_is_not_the_envelope_keeps_the_status(self) -> None:
        e = error_from_response(502, b"<html>Bad Gateway</html>", REQ)
        self.assertIs(type(e), ServerError)
        self.assertEqual((e.code, e.message), ("http_502", "<html>Bad Gateway</html>"))
        e = error_from_response(404, b"", REQ)
        self.assertIs(type(e), NotFoundError)
        self.assertEqual(e.message, "HTTP 404 with an empty body")


class TransportTest(unittest.TestCase):
    def test_connection_refused(self) -> None:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        with self.assertRaises(ConnectionFailedError) as caught:
            TrainerClient(f"http://127.0.0.1:{port}", "t").versions("r")
        e = caught.exception
        self.assertIsInstance(e, ConnectionError)
        self.assertIsInstance(e, LoracastError)
        self.assertEqual(e.request, RequestInfo("GET", f"http://127.0.0.1:{port}/v1/runs/r/versions"))

    def test_a_server_that_never_answers_times_out(self) -> None:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        accepted: list[socket.socket] = []
        thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.getsockname()[1]}"
            with self.assertRaises(RequestTimeoutError) as caught:
                GeneratorClient(url, timeout_s=0.3).complete("r@1", ["hi"])
            self.assertIsInstance(caught.exception, TimeoutError)
            self.assertEqual(caught.exception.request, RequestInfo("POST", f"{url}/v1/completions"))
            self.assertIn("no answer within 0.3 s", str(caught.exception))
        finally:
            thread.join(5)
            for c in accepted:
                c.close()
            server.close()


if __name__ == "__main__":
    unittest.main()
