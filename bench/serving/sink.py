"""A stand-in drift monitor for the benchmark: answers every POST with 202 and counts the rows.

Usage::

    python bench/serving/sink.py PORT
"""

from __future__ import annotations

import asyncio
import sys


class _Sink(asyncio.Protocol):
    """Keeps the connection alive between batches, as the real sidecar does, so the server's
    measured share is the feed's, not a new TCP connection per batch."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.chunks: list[bytes] = []
        self.size = 0
        self.needed: int | None = None  # bytes of the current request (head + body), once known

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        while True:
            if self.needed is None:
                buffer = b"".join(self.chunks)
                self.chunks = [buffer]
                head, sep, _ = buffer.partition(b"\r\n\r\n")
                if not sep:
                    return
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                self.needed = len(head) + 4 + length
            if self.size < self.needed:
                return
            rest = b"".join(self.chunks)[self.needed :]
            self.chunks, self.size, self.needed = [rest], len(rest), None
            self.transport.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}")  # type: ignore[attr-defined]


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Sink, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
