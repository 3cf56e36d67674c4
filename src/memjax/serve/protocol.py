"""The HTTP/1.1 connections of ``memjax serve``: uvicorn's h11 protocol with a deadline per request.

uvicorn closes a keep-alive connection left idle (``timeout_keep_alive``) but sets no limit on a
request that arrives slowly: a client sending its headers or its body a few bytes at a time holds a
connection, and the request's task, for as long as it likes ("slowloris"). Here a request must
arrive whole, head and body, within ``request_timeout`` seconds of the moment the server starts
waiting for it (the connection opened, or the previous response was sent). Otherwise the
connection is closed: after a one-line JSON 408 when part of the request came and no response has
begun; silently when nothing came (an idle connection, such as a browser's spare one).

Requests h11 refuses (not HTTP/1.1, or a head still incomplete past ``h11_max_incomplete_event_size``,
16 KiB in ``memjax serve``) get a one-line JSON 400 with the security headers, as the application's
errors do.

Run it with ``uvicorn.run(app, http=protocol(10.0))``. uvicorn picks httptools over h11 when it is
installed; naming this class keeps the same protocol, and these limits, everywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from memjax.serve.app import SECURITY_HEADERS

__all__ = ["KEEP_ALIVE_TIMEOUT", "MAX_HEAD", "REQUEST_TIMEOUT", "DeadlineH11Protocol", "protocol"]

REQUEST_TIMEOUT = 10.0  # seconds for a whole request to arrive (memjax serve --request-timeout)
KEEP_ALIVE_TIMEOUT = 5  # seconds an idle keep-alive connection stays open (uvicorn's default, made explicit)
MAX_HEAD = 16 * 1024  # bytes of request line and headers h11 buffers before refusing the request (400)

log = logging.getLogger("memjax.serve")


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, where each request must arrive whole within :attr:`request_timeout` seconds."""

    request_timeout: float = REQUEST_TIMEOUT

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._seen: object = None  # the client's h11 state at the last look

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """h11 refused the request (uvicorn has logged why): a JSON 400, then the connection closes."""
        self._answer(400, "invalid HTTP request: not HTTP/1.1, or a request line and headers over "
                          f"{MAX_HEAD // 1024} KiB")
        self._close()

    def _watch(self) -> None:
        """Runs the clock while the server waits for a request (the client idle or sending it), and stops it once
        the request is whole: one clock from the start of the wait to the request's end.

        A new wait starts whenever the client's side turns idle again: after a response, or once the rest of
        a body answered before it was read (a 413 or 415) has arrived.
        """
        state = self.conn.their_state
        if state not in (h11.IDLE, h11.SEND_BODY) or self.transport.is_closing():
            self._stop()
        elif self._deadline is None or (state is h11.IDLE and self._seen is not h11.IDLE):
            self._stop()
            self._deadline = self.loop.call_later(self.request_timeout, self._timed_out)
        self._seen = state

    def _stop(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        """The request did not arrive in time: a 408 if part of it came and no response has begun, then close."""
        self._deadline = None
        if self.transport.is_closing():
            return
        partial = self.conn.their_state is h11.SEND_BODY or bool(self.conn.trailing_data[0])
        if partial and self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            client = "%s:%d" % self.client if self.client else "a client"
            log.warning("%s: the request did not arrive within %g s: 408, connection closed", client,
                        self.request_timeout)  # a warning, as uvicorn's for invalid requests
            self._answer(408, f"the request did not arrive whole within {self.request_timeout:g} s")
        self._close()

    def _close(self) -> None:
        """Closes the connection; a handler still running reads the end of the body and can answer no more
        (as uvicorn does once the connection is lost, which comes a moment later)."""
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()

    def _answer(self, status: int, message: str) -> None:
        """Writes a one-line JSON error with the security headers (the caller closes the connection)."""
        body = json.dumps({"error": message}).encode("utf-8")
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        headers += [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
        try:
            for event in (h11.Response(status_code=status, headers=headers), h11.Data(data=body), h11.EndOfMessage()):
                self.transport.write(self.conn.send(event) or b"")
        except h11.LocalProtocolError:  # a response has begun after all: closing is all that is left
            pass


def protocol(request_timeout: float = REQUEST_TIMEOUT) -> type[DeadlineH11Protocol]:
    """The protocol class for ``uvicorn.run(app, http=...)``, with this request timeout in seconds."""
    if not (request_timeout > 0 and math.isfinite(request_timeout)):
        raise ValueError(f"the request timeout must be a positive number of seconds, got {request_timeout}")
    return type("DeadlineH11Protocol", (DeadlineH11Protocol,), {"request_timeout": float(request_timeout)})
