"""The server's own HTTP/1.1 transport, spoken to over a raw socket: pipelining, keep-alive, bad bytes."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from tests.component.serving.conftest import Launcher, Server, Store, routing_document
from tests.component.serving.test_endpoints import per_feature


@pytest.fixture(scope="module")
def server(module_launcher: Launcher, store: Store) -> Server:
    return module_launcher(routing_document(("1", store.digests["v1"])), "--max-body-bytes", "65536")


def exchange(
    server: Server, payload: bytes, responses: int = 1, timeout: float = 10
) -> list[tuple[int, bytes]]:
    """Send raw bytes; read ``responses`` complete responses (status, body)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(payload)
        buffer = b""
        answers: list[tuple[int, bytes]] = []
        while len(answers) < responses:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end >= 0:
                head = buffer[:head_end].decode("latin-1").split("\r\n")
                status = int(head[0].split()[1])
                lengths = [int(h.split(":")[1]) for h in head[1:] if h.lower().startswith("content-length")]
                length = lengths[0] if lengths else 0
                if len(buffer) >= head_end + 4 + length:
                    if status != 100:
                        answers.append((status, buffer[head_end + 4 : head_end + 4 + length]))
                    buffer = buffer[head_end + 4 + length :]
                    continue
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
        return answers


def post(path: str, body: dict[str, Any] | bytes, extra: str = "") -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


def test_pipelined_requests_are_answered_in_order_on_one_connection(server: Server) -> None:
    requests = [
        post("/v2/models/credit/infer", per_feature(rows=3, id="first")),
        b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n",
        post("/v2/models/credit/infer", b"{broken"),
        post("/v2/models/credit/infer", per_feature(rows=1, id="last")),
    ]
    answers = exchange(server, b"".join(requests), responses=4)
    assert [status for status, _ in answers] == [200, 200, 400, 200]
    assert json.loads(answers[0][1])["id"] == "first"
    assert json.loads(answers[1][1]) == {"live": True}
    assert json.loads(answers[3][1])["id"] == "last"


def test_bytes_that_are_not_http_get_a_400_and_the_server_keeps_serving(server: Server) -> None:
    assert exchange(server, b"\x16\x03\x01 definitely not http\r\n\r\n") == [
        (400, exchange(server, b"\x16\x03\x01 definitely not http\r\n\r\n")[0][1])
    ]
    assert server.client.get("/v2/health/live").status_code == 200


def test_a_client_that_expects_100_continue_gets_it_and_then_its_answer(server: Server) -> None:
    answers = exchange(
        server, post("/v2/models/credit/infer", per_feature(rows=1), "Expect: 100-continue\r\n")
    )
    assert answers[0][0] == 200


def test_a_declared_body_over_the_limit_is_refused_without_reading_it_all(server: Server) -> None:
    head = b"POST /v2/models/credit/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + b"{" * 70000)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in answer
    assert server.client.get("/v2/health/live").status_code == 200
