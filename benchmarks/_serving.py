"""The serving benchmarks' shared parts: a lean HTTP/1.1 keep-alive client, the served app.

The serving benchmarks run their clients on the same 2-vCPU machine as the server, so
whatever CPU the clients spend is taken from the server. A full client library costs
more than the requests it measures: httpx's `AsyncClient.post` took 2.0–2.3 ms of CPU a
request against the text route (benchmarks/text_generation_http.py, 2026-11-29), a tenth
of the server's own cost per request there. This client writes the request bytes and reads
a `Content-Length` answer and nothing else (no chunked bodies, redirects, cookies or
TLS): what a load generator such as wrk does, in Python.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Connection:
    """One keep-alive connection to a loopback server; requests on it go one after another."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        """(status, body) of one request; the answer must carry Content-Length (JSON routes do)."""
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def one_request(
    port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, bytes]:
    """One request on a connection of its own."""
    connection = await Connection.open(port)
    try:
        return await connection.request(method, path, body, headers)
    finally:
        connection.close()


def served_app(workspace: Any) -> Any:
    """`create_app(workspace)` as `genloop serve` builds it (start-up heap frozen); for
    side-by-side runs of older genloop trees (`PYTHONPATH=<tree>/src`) whose create_app
    had no `long_running`, the plain app."""
    from genloop.server.app import create_app

    if "long_running" in inspect.signature(create_app).parameters:
        return create_app(workspace, long_running=True)
    return create_app(workspace)
