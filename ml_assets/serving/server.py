"""The uvicorn server the proxy runs on, configured once for `__main__`, the tests and the benchmark."""

from __future__ import annotations

import json

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

SHUTDOWN_GRACE_SECONDS = 2


class JsonErrorsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering requests its parser rejects with a JSON message.

    A negative, non-numeric or overflowing `Content-Length`, or broken framing, never reaches the app:
    uvicorn answers 400 itself, in plain text. This keeps the proxy's one error shape (`{"error": ...}`).
    """

    def send_400_response(self, msg: str) -> None:
        """Writes a 400 with a JSON body and closes the connection, as uvicorn does with its text one."""
        body = json.dumps({"error": f"malformed HTTP request ({msg}); check Content-Length and framing"}).encode()
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def server_config(app: Starlette, *, host: str, port: int) -> uvicorn.Config:
    """The proxy's uvicorn settings: httptools with JSON 400s, no access log, a short graceful shutdown.

    Args:
        app: The proxy app (`ml_assets.serving.app.create_app`).
        host: The interface to listen on.
        port: The port.

    Returns:
        The config for `uvicorn.Server`.
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=JsonErrorsProtocol,
        log_level="warning",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
