"""The JSON-RPC port's HTTP/1.1 (services/jsonrpc/_http.py), byte by byte over raw sockets, against
a real tree: keep-alive, pipelining, requests split across writes, the refusals (400, 413, 431),
HTTP/1.0, chunked bodies and WebSocket upgrades handed to aiohttp on the same connection, and
clients that go away mid-request."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
import urllib.parse
from typing import Any

from tests.jsonrpc.conftest import Tree

DATA = ["0x", "0x01", "0x6869", "0xdeadbeef"]


class Conn:
    """One TCP connection to the JSON-RPC port, and what came back on it so far."""

    def __init__(self, tree: Tree) -> None:
        parts = urllib.parse.urlsplit(tree.url)
        self.host = f"{parts.hostname}:{parts.port}"
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def post(self, body: bytes, version: str = "1.1", extra: str = "") -> bytes:
        return (f"POST / HTTP/{version}\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """The next response: status, headers (lower-case names), body."""
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"connection closed before a response: {self.buffer!r}"
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            assert self._fill(), "connection closed mid-body"
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split(" ")[1]), headers, body

    def closed(self) -> bool:
        """True when the server closed the connection (after anything still buffered)."""
        try:
            return not self._fill() and not self.buffer
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def _sha3(data: str, request_id: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "web3_sha3", "params": [data]}).encode()


def _expected(tree: Tree, data: str) -> str:
    return str(tree.call("web3_sha3", data))


def test_keep_alive_and_pipelined_requests_are_answered_in_order_on_one_connection(tree: Tree) -> None:
    hashes = [_expected(tree, d) for d in DATA]
    conn = Conn(tree)
    try:
        for i, data in enumerate(DATA):  # one after the other, keep-alive
            conn.send(conn.post(_sha3(data, i)))
            status, headers, body = conn.response()
            assert status == 200 and headers["content-type"] == "application/json"
            assert json.loads(body) == {"jsonrpc": "2.0", "id": i, "result": hashes[i]}
        conn.send(b"".join(conn.post(_sha3(d, 10 + i)) for i, d in enumerate(DATA)))  # pipelined, one write
        answers = [json.loads(conn.response()[2]) for _ in DATA]
        assert [(a["id"], a["result"]) for a in answers] == [(10 + i, h) for i, h in enumerate(hashes)]
        conn.send(conn.post(_sha3("0x01", 99), extra="Connection: close\r\n"))
        status, headers, body = conn.response()
        assert status == 200 and headers["connection"] == "close" and json.loads(body)["result"] == hashes[1]
        assert conn.closed()
    finally:
        conn.close()


def test_a_request_split_across_writes_and_one_waiting_for_100_continue(tree: Tree) -> None:
    conn = Conn(tree)
    try:
        whole = conn.post(_sha3("0x6869", 1))
        pieces = [whole[:3], whole[3:17], whole[17:40], whole[40:-5], whole[-5:]]  # mid-line, -header, -body
        for piece in pieces:
            conn.send(piece)
            time.sleep(0.005)  # separate segments, so the server sees them one by one
        assert json.loads(conn.response()[2])["result"] == _expected(tree, "0x6869")
        body = _sha3("0xdeadbeef", 2)
        conn.send(conn.post(body, extra="Expect: 100-continue\r\n")[:-len(body)])
        assert conn.response()[0] == 100
        conn.send(body)
        assert json.loads(conn.response()[2])["id"] == 2
    finally:
        conn.close()


def test_refusals_are_http_errors_and_close_the_connection(tree: Tree) -> None:
    cases = [
        (b"POST / HTTP/1.1\r\nContent-Length: 6000000\r\n\r\n", 413),  # over geth's 5 MiB: not read at all
        (b"POST /\r\n\r\n", 400),  # no version
        (b"POST / HTTP/1.1 extra\r\n\r\n", 400),
        (b"P@ST / HTTP/1.1\r\n\r\n", 400),
        (b"POST / HTTP/2.0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", 431),
    ]
    for request, status in cases:
        conn = Conn(tree)
        try:
            conn.send(request)
            got, headers, body = conn.response()
            assert (got, headers["connection"]) == (status, "close"), request[:60]
            assert body.startswith(b"JSON-RPC: ")
            assert conn.closed()
        finally:
            conn.close()
    conn = Conn(tree)  # a refusal after a good request: the good one is answered first
    try:
        conn.send(conn.post(_sha3("0x", 1)) + b"GARBAGE\r\n\r\n")
        assert json.loads(conn.response()[2])["id"] == 1
        assert conn.response()[0] == 400 and conn.closed()
    finally:
        conn.close()


def test_no_content_length_is_an_empty_body_and_a_chunked_one_is_read(tree: Tree) -> None:
    conn = Conn(tree)
    try:
        conn.send(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = conn.response()
        assert status == 200 and json.loads(body)["error"]["code"] == -32700  # as geth: nothing to parse
        payload = _sha3("0x01", 7)
        chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, payload[:10], len(payload) - 10, payload[10:])
        conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + chunked)  # aiohttp takes this connection over
        status, _, body = conn.response()
        assert status == 200 and json.loads(body) == {"jsonrpc": "2.0", "id": 7, "result": _expected(tree, "0x01")}
        conn.send(conn.post(_sha3("0x", 8)))  # and keeps serving it
        assert json.loads(conn.response()[2])["id"] == 8
    finally:
        conn.close()


def test_http_1_0_closes_unless_kept_alive(tree: Tree) -> None:
    conn = Conn(tree)
    try:
        conn.send(conn.post(_sha3("0x", 1), version="1.0"))
        status, headers, body = conn.response()
        assert status == 200 and headers["connection"] == "close" and json.loads(body)["id"] == 1
        assert conn.closed()
    finally:
        conn.close()
    conn = Conn(tree)
    try:
        for i in range(2):
            conn.send(conn.post(_sha3("0x", i), version="1.0", extra="Connection: keep-alive\r\n"))
            status, headers, body = conn.response()
            assert headers["connection"] == "keep-alive" and json.loads(body)["id"] == i
    finally:
        conn.close()


def test_clients_gone_mid_request_or_before_their_answer_leave_the_server_serving(tree: Tree) -> None:
    whole = Conn(tree).post(_sha3("0x01", 1))
    for cut in (10, len(whole) - 3, len(whole)):  # mid-head, mid-body, whole but never read
        conn = Conn(tree)
        conn.send(whole[:cut])
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset
        conn.close()
    conn = Conn(tree)
    try:
        conn.send(whole)
        assert json.loads(conn.response()[2])["result"] == _expected(tree, "0x01")
    finally:
        conn.close()


def _ws_frame(text: bytes) -> bytes:
    mask = os.urandom(4)
    assert len(text) < 126
    return bytes([0x81, 0x80 | len(text)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(text))


def _ws_message(conn: Conn) -> Any:
    while len(conn.buffer) < 2:
        assert conn._fill()
    length, offset = conn.buffer[1] & 0x7F, 2
    if length == 126:
        while len(conn.buffer) < 4:
            assert conn._fill()
        length, offset = struct.unpack(">H", conn.buffer[2:4])[0], 4
    while len(conn.buffer) < offset + length:
        assert conn._fill()
    payload, conn.buffer = conn.buffer[offset:offset + length], conn.buffer[offset + length:]
    return json.loads(payload)


def test_a_get_is_aiohttps_a_websocket_upgrade_even_after_posts_and_anything_else_a_400(tree: Tree) -> None:
    conn = Conn(tree)
    try:
        conn.send(f"GET / HTTP/1.1\r\nHost: {conn.host}\r\n\r\n".encode())
        status, _, body = conn.response()
        assert status == 400 and b"POST a request, or GET with a WebSocket upgrade" in body
    finally:
        conn.close()
    conn = Conn(tree)
    try:
        conn.send(conn.post(_sha3("0x", 1)))
        assert json.loads(conn.response()[2])["id"] == 1
        key = base64.b64encode(os.urandom(16)).decode()
        conn.send(f"GET / HTTP/1.1\r\nHost: {conn.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        status, headers, _ = conn.response()
        assert status == 101 and headers["upgrade"].lower() == "websocket"
        conn.send(_ws_frame(_sha3("0x01", 2)))
        assert _ws_message(conn) == {"jsonrpc": "2.0", "id": 2, "result": _expected(tree, "0x01")}
    finally:
        conn.close()
