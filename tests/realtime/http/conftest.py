"""A real HTTP ingest service (uvicorn) on a free port, in a thread of the test process,
per database (the ``engine`` fixture of tests/conftest.py: SQLite and PostgreSQL)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
import uvicorn

from core.jobs.devices import complete_quiet
from realtime.http.app import create_app
from realtime.store import Store
from tests.realtime.conftest import make_token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningHttp:
    """The HTTP service on its own thread and event loop."""

    def __init__(self, url: str, **options):
        self.store = Store(url)
        self.app = create_app(self.store, **options)
        self.port = free_port()
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False, lifespan="on", timeout_graceful_shutdown=10)
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # not the main thread
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> RunningHttp:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the HTTP service did not start")
            time.sleep(0.01)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def svc(self):
        return self.app.state.svc

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.store.close()


@pytest.fixture
def http(engine, db_url):
    running = RunningHttp(db_url).start()
    running.token = lambda name: make_token(engine, name)
    running.session = requests.Session()
    yield running
    running.session.close()
    running.close()


def complete_all(Session, idle: float, now: float) -> int:
    """The worker's completion, round after round until nothing is left (the shared test
    database holds other tests' quiet phones too, and a round takes at most DEVICE_BATCH)."""
    total = 0
    while (done := complete_quiet(Session, idle, now=now))["completed"] + done["discarded"]:
        total += done["completed"]
    return total
