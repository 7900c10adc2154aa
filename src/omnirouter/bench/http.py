"""A lean HTTP/1.1 client for offering webhooks: keep-alive connections, one request at a time
on each, requests written as prebuilt bytes.

The bench shares its host's two cores with the gateway it measures. aiohttp spent 0.24 ms of
CPU per webhook (0.39 cores at 1,600 webhooks/s, 0.55 at 3,200/s): CPU taken from the gateway
whenever both want a core at once, which showed as the gateway's latency. Here a request is one
``write`` of bytes built before the step starts, and a response is read by a small parser that
knows only what a gateway sends back (a status line, headers, a ``Content-Length`` or chunked
body). Like a provider's webhook sender, it never pipelines: a connection carries its next
request only once the previous one was answered.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["HttpProtocolError", "KeepAlivePool", "build_post"]


class HttpProtocolError(Exception):
    """The server answered something this client cannot read as an HTTP/1.1 response."""


def build_post(url: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    """The bytes of a ``POST`` of ``body`` to ``url``, ready to be written as they are."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Response:
    """Reads one response from the bytes a connection receives, in as many pieces as they come."""

    __slots__ = ("_buffer", "_chunked", "_chunks", "_remaining", "keep_alive", "status")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._chunks: list[bytes] = []
        self.status = 0
        self.keep_alive = True
        self._remaining = -1  # body bytes still to come; -1 until the headers are read
        self._chunked = False

    def feed(self, data: bytes) -> bool:
        """Take ``data``; True once the response is complete.

        Raises:
            HttpProtocolError: the bytes are not a response this parser can read.
        """
        self._buffer += data
        try:
            if self._remaining < 0 and not self._chunked and not self._read_head():
                return False
            if self._chunked:
                return self._read_chunks()
        except ValueError as exc:  # a status, length or chunk size that is not a number
            raise HttpProtocolError(f"unreadable response: {exc}") from exc
        if len(self._buffer) > self._remaining:
            raise HttpProtocolError("more bytes than the response's Content-Length")
        return len(self._buffer) == self._remaining

    @property
    def body(self) -> bytes:
        """The body read so far (all of it once :meth:`feed` said the response is complete)."""
        return b"".join(self._chunks) if self._chunked else bytes(self._buffer)

    def _read_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        status_line = head[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1."):
            raise HttpProtocolError(f"not an HTTP/1.x status line: {head[0][:80]!r}")
        self.status = int(status_line[1])
        self.keep_alive = status_line[0] == "HTTP/1.1"
        length = None
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and value.lower() == "chunked":
                self._chunked = True
            elif name == "connection":
                self.keep_alive = value.lower() != "close"
        if not self._chunked:
            if length is None:
                raise HttpProtocolError("a response with neither Content-Length nor chunks")
            self._remaining = length
        return True

    def _read_chunks(self) -> bool:
        while True:
            line_end = self._buffer.find(b"\r\n")
            if line_end < 0:
                return False
            size = int(bytes(self._buffer[:line_end]).split(b";", 1)[0], 16)
            if size == 0:  # the last chunk; no trailers are expected from a gateway
                if len(self._buffer) < line_end + 4:
                    return False
                del self._buffer[: line_end + 4]
                return True
            if len(self._buffer) < line_end + 2 + size + 2:
                return False
            self._chunks.append(bytes(self._buffer[line_end + 2 : line_end + 2 + size]))
            del self._buffer[: line_end + 2 + size + 2]


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[_Response] | None = None
        self._response = _Response()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, request: bytes, timeout_s: float) -> asyncio.Future[_Response]:
        """Write ``request``; the future fails with TimeoutError unless answered in time."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        answer = self._answer = loop.create_future()
        self._response = _Response()
        if self.transport.is_closing():  # closed by the server since it was last answered
            answer.set_exception(ConnectionResetError("the server closed the connection"))
            return answer
        # One timer per request, cancelled on the answer: cheaper than a timeout scope.
        timer = loop.call_later(timeout_s, self._fail, TimeoutError("no answer in time"))
        answer.add_done_callback(lambda _: timer.cancel())
        self.transport.write(request)
        return answer

    def data_received(self, data: bytes) -> None:
        answer = self._answer
        if answer is None or answer.done():
            self._fail(HttpProtocolError("bytes arrived with no request waiting for them"))
            return
        try:
            complete = self._response.feed(data)
        except HttpProtocolError as exc:
            self._fail(exc)
            return
        if complete:
            answer.set_result(self._response)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_exception(exc or ConnectionResetError("the server closed the connection"))

    def _fail(self, exc: Exception) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class KeepAlivePool:
    """Up to ``limit`` keep-alive connections to one host; a request waits for a free one."""

    def __init__(self, url: str, *, limit: int, timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only plain http URLs are supported: {url}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._limit = limit
        self._timeout_s = timeout_s
        self._idle: list[_Connection] = []
        self._open = 0  # connections open or being opened, idle or not: at most ``limit``
        self._waiting: deque[asyncio.Future[_Connection | None]] = deque()
        self._closed = False

    async def post(self, request: bytes) -> int:
        """Send ``request`` (from :func:`build_post`) and return the response's status.

        Raises what the connection raised (``OSError``, :class:`HttpProtocolError`) or
        ``TimeoutError`` past the pool's timeout; the connection is then dropped.
        """
        return (await self._exchange(request)).status

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """:meth:`post`, returning the response's body with its status."""
        response = await self._exchange(request)
        return response.status, response.body

    async def _exchange(self, request: bytes) -> _Response:
        connection = await self._acquire()
        try:
            response = await connection.send(request, self._timeout_s)
        except BaseException:
            connection.close()
            self._release(None)
            raise
        if response.keep_alive and not connection.closed:
            self._release(connection)
        else:
            connection.close()
            self._release(None)
        return response

    async def _acquire(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
            self._open -= 1
        if self._open < self._limit:
            self._open += 1  # a place of our own, to open a connection in
        else:
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # handed over just before
                    self._release(waiter.result())  # passed on, so nothing is lost
                raise
            if handed is not None:
                return handed
            # None: the place of a connection that was dropped, still counted, is ours.
        try:
            _, connection = await asyncio.get_running_loop().create_connection(
                _Connection, self._host, self._port
            )
        except BaseException:
            self._release(None)
            raise
        return connection

    def _release(self, connection: _Connection | None) -> None:
        """Hand ``connection`` to a waiting request, or keep it idle. None (it was dropped, or
        never opened): its place goes to a waiting request, which opens a new one, or is
        freed. A closed pool closes what comes back."""
        if connection is not None and self._closed:
            connection.close()
            connection = None
        if self._wake_one(connection):
            return
        if connection is None:
            self._open -= 1
        else:
            self._idle.append(connection)

    def _wake_one(self, connection: _Connection | None) -> bool:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False

    def close(self) -> None:
        """Close every idle connection; requests in flight close theirs when answered."""
        self._closed = True
        for connection in self._idle:
            connection.close()
            self._open -= 1
        self._idle.clear()
