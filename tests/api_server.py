"""The API under a real uvicorn server in this process, for tests that talk HTTP to it."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn


class Server:
    """The API under uvicorn in a thread, on a socket bound to a free port."""

    def __init__(self, app) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop serving; the app's lifespan closes the state file. Idempotent."""
        self.server.should_exit = True
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
