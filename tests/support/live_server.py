"""A real uvicorn server for a workspace, on a free localhost port, in a thread.

    with serve_in_thread(workspace) as base_url:   # "http://127.0.0.1:PORT"
        ...

For tests that need real HTTP: a browser, or streams (TestClient buffers a whole response).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn

from genloop.server.app import create_app
from genloop.workspace import Workspace

START_TIMEOUT_S = 30


@contextmanager
def serve_in_thread(workspace: Workspace) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    config = uvicorn.Config(create_app(workspace), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail(f"uvicorn did not start within {START_TIMEOUT_S} s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
