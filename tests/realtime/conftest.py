"""A real ingest server on a free port, in a thread of the test process, per database."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy.orm import Session

from core.accounts.tokens import create_device_token
from core.accounts.users import create_user
from realtime.server import IngestServer
from realtime.store import Store


class RunningServer:
    """An ingest server running on its own event loop thread."""

    def __init__(self, url: str, **options):
        self.store = Store(url)
        self.server = IngestServer(self.store, **options)
        self.loop = asyncio.new_event_loop()
        self.ready: asyncio.Future | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.stop = self.loop.create_future()
        self.ready = self.loop.create_future()
        self.loop.run_until_complete(self.server.run("127.0.0.1", 0, self.stop, self.ready))

    def start(self) -> RunningServer:
        self.thread.start()
        while self.ready is None:
            pass
        self.port = asyncio.run_coroutine_threadsafe(asyncio.wait_for(asyncio.shield(self.ready), 30),
                                                     self.loop).result()
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.loop.call_soon_threadsafe(lambda: self.stop.done() or self.stop.set_result(None))
        self.thread.join(30)
        self.store.close()


def make_token(engine, username: str) -> str:
    with Session(engine) as s, s.begin():
        from core.accounts.users import user_by_name
        user = user_by_name(s, username) or create_user(s, username)
        _, secret = create_device_token(s, user)
        return secret


@pytest.fixture
def db_url(engine):
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def ingest(engine, db_url):
    running = RunningServer(db_url, idle_timeout_s=30).start()
    running.token = lambda name: make_token(engine, name)
    yield running
    running.close()
