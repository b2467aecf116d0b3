"""HTTP/1.1 for JSON-RPC POSTs on an asyncio.Protocol of our own: aiohttp's server cost ~110 us of
CPU a request, which alone kept a process under 10,000 requests/s; this costs a fraction of that.

What it serves itself: ``POST`` with a ``Content-Length`` body (none: an empty body, a -32700),
keep-alive (HTTP/1.1 unless ``Connection: close``; HTTP/1.0 only with ``Connection: keep-alive``),
pipelined requests answered in their order, one at a time, ``Expect: 100-continue``. What it
refuses, then closes: a malformed request line or header (400), a head over ``MAX_HEAD`` bytes or
``MAX_HEADERS`` lines (431), a body over the settings' ``max_body_bytes`` (413). Anything else (a
GET: the WebSocket upgrade, or its 400; a chunked POST; another method) is handed over, with the
bytes not yet read, to aiohttp's protocol on the same connection, once the requests before it are
answered: from then on aiohttp owns the connection, as it owned all of them before.

A client that goes away mid-request loses its answer, not its call: a call under way is not
cancelled (a send may already be in the pool), as aiohttp's server did not cancel handlers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

#: Request line plus headers, bytes; and header lines (aiohttp's: 8190-byte lines, 32,768 fields).
MAX_HEAD: Final = 16 * 1024
MAX_HEADERS: Final = 128
#: Requests parsed ahead of the one being answered before the connection stops reading (pipelining).
MAX_QUEUED: Final = 32
#: A connection with nothing in flight and nothing received for this long is closed (aiohttp's
#: keepalive_timeout default, the behaviour before).
IDLE_S: Final = 3630.0

Headers = dict[str, str]
#: The body and the headers (lower-case names) -> the encoded answer, None when there is nothing to say.
Answer = Callable[[bytes, Headers], Awaitable[bytes | None]]

_STATUS: Final = {400: b"400 Bad Request", 413: b"413 Payload Too Large",
                  431: b"431 Request Header Fields Too Large"}
_OK: Final = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
_CLOSE: Final = b"\r\nConnection: close\r\n\r\n"
_KEEP_ALIVE_10: Final = b"\r\nConnection: keep-alive\r\n\r\n"
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_TOKEN: Final = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class _Request:
    __slots__ = ("body", "headers", "http10", "keep_alive")

    def __init__(self, body: bytes, headers: Headers, keep_alive: bool, http10: bool) -> None:
        self.body = body
        self.headers = headers
        self.keep_alive = keep_alive
        self.http10 = http10


class HttpProtocol(asyncio.Protocol):
    """One connection. ``answer`` answers a POST's body; ``handover`` makes the protocol (aiohttp's)
    that takes the connection over at a request this one does not serve."""

    def __init__(self, answer: Answer, handover: Callable[[], asyncio.Protocol], max_body: int,
                 connections: set[HttpProtocol]) -> None:
        self._answer = answer
        self._handover = handover
        self._max_body = max_body
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._queue: deque[_Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._done = False  # no more requests are read (a close is coming, or aiohttp has it)
        self._passing = False  # the buffer starts with a request for aiohttp: hand over once answered
        self._paused = False
        self._continued = False  # 100 Continue sent for the request at the buffer's start
        self._drain: asyncio.Future[None] | None = None
        self._refusal: bytes | None = None  # an HTTP refusal, written once the requests before it are answered
        self.last_active = self._loop.time()

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._done = True
        self._queue.clear()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._drain = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    def data_received(self, data: bytes) -> None:
        self.last_active = self._loop.time()
        if self._done:
            return
        self._buffer += data
        if self._passing:
            return
        try:
            self._parse()
        except _Refused as refused:
            self._refuse(refused.status, str(refused))

    def eof_received(self) -> bool | None:
        # The client is done sending: answer what it asked, then close (the default closes now).
        self._done = True
        return self._task is not None

    # -- parsing -------------------------------------------------------------------------------

    def _parse(self) -> None:
        buffer = self._buffer
        while buffer and not self._done:
            end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise _Refused(431, "request head too large")
                if not buffer.startswith(b"\r\n"):
                    return
                del buffer[:2]  # a stray CRLF between requests (RFC 9112 2.2)
                continue
            lines = bytes(buffer[:end]).split(b"\r\n")
            parts = lines[0].split(b" ")
            if len(parts) != 3 or not parts[0] or not parts[1] or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0") \
                    or not set(parts[0]) <= _TOKEN:
                raise _Refused(400, "malformed request line")
            if len(lines) > MAX_HEADERS:
                raise _Refused(431, "too many header fields")
            headers: Headers = {}
            for line in lines[1:]:
                name, colon, value = line.partition(b":")
                if not colon or not name or not set(name) <= _TOKEN:
                    raise _Refused(400, "malformed header field")
                key = name.decode().lower()
                text = value.strip(b" \t").decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            if parts[0] != b"POST" or "transfer-encoding" in headers:
                self._passing = True  # aiohttp's: a GET (WebSocket), a chunked body, another method
                if self._task is None:
                    self._pass()
                return
            length_text = headers.get("content-length", "0")
            if not length_text.isdigit() or not length_text.isascii():
                raise _Refused(400, "malformed Content-Length")
            length = int(length_text)
            if length > self._max_body:
                raise _Refused(413, f"body of {length} bytes, at most {self._max_body}")
            start = end + 4
            if len(buffer) < start + length:
                if not self._continued and headers.get("expect", "").lower() == "100-continue":
                    self._continued = True
                    self._write(_CONTINUE)
                return
            self._continued = False
            body = bytes(buffer[start:start + length])
            del buffer[:start + length]
            http10 = parts[2] == b"HTTP/1.0"
            connection = headers.get("connection", "").lower()
            keep_alive = "keep-alive" in connection if http10 else "close" not in connection
            self._queue.append(_Request(body, headers, keep_alive, http10))
            if not keep_alive:
                self._done = True
            if self._task is None:
                self._task = self._loop.create_task(self._serve())
            elif len(self._queue) >= MAX_QUEUED and not self._paused and self._transport is not None:
                self._paused = True
                self._transport.pause_reading()

    # -- answering -----------------------------------------------------------------------------

    async def _serve(self) -> None:
        """The queued requests in order, one at a time; then what comes next (close, hand over)."""
        try:
            while self._queue:
                request = self._queue.popleft()
                answer = await self._answer(request.body, request.headers)
                if self._transport is None or self._transport.is_closing():
                    return
                length = str(len(answer)).encode() if answer is not None else b"0"
                ending = b"\r\n\r\n" if request.keep_alive and not request.http10 else \
                    _KEEP_ALIVE_10 if request.keep_alive else _CLOSE
                self._write(b"".join((_OK, length, ending, answer or b"")))
                if not request.keep_alive:
                    self._transport.close()
                    return
                if self._drain is not None:
                    await self._drain
                if self._paused and len(self._queue) < MAX_QUEUED // 2:
                    self._paused = False
                    self._transport.resume_reading()
        finally:
            self._task = None
        if self._transport is None or self._transport.is_closing():
            return
        if self._refusal is not None:
            self._write(self._refusal)
            self._transport.close()
        elif self._passing:
            self._pass()
        elif self._done:  # the client half-closed: all it asked is answered
            self._transport.close()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _refuse(self, status: int, reason: str) -> None:
        """An answer in HTTP (not JSON-RPC: the request is not one), then the connection closes
        once the requests before it are answered: what follows cannot be trusted to be framed."""
        self._done = True
        self._buffer.clear()
        text = f"JSON-RPC: {reason}\n".encode()
        reply = b"HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d%s%s" % (
            _STATUS[status], len(text), _CLOSE, text)
        self._refusal = reply
        if self._task is None and self._transport is not None:
            self._write(reply)
            self._transport.close()

    def _pass(self) -> None:
        """aiohttp takes the connection over, from the request at the buffer's start."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._done = True
        self._connections.discard(self)
        protocol = self._handover()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._paused:
            self._paused = False
            transport.resume_reading()
        pending, self._buffer = bytes(self._buffer), bytearray()
        if pending:
            protocol.data_received(pending)

    # -- for the server ------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return self._task is None and not self._queue

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.close()
