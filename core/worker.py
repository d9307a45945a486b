"""The scheduled jobs: ``python -m core worker`` rebuilds the Redis leaderboards every three
minutes (the seed's refresh interval), so an activity completed now counts at the next
refresh. Without Redis the boards are read from the database and there is nothing to rebuild.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from core.config import load_settings
from core.db import make_engine, make_sessionmaker
from core.leaderboard import REFRESH_EVERY_S, connect_redis, refresh_redis
from core.schema import migrate

log = logging.getLogger("core.worker")


def run_once(Session, redis) -> dict:
    """One round of every job; returns what it did."""
    done = {}
    if redis is not None:
        began = time.monotonic()
        with Session() as s:
            sizes = refresh_redis(s, redis)
        done["leaderboards"] = {"boards": len(sizes), "athletes": sum(sizes.values()),
                                "seconds": round(time.monotonic() - began, 3)}
    return done


def run(interval_s: float = REFRESH_EVERY_S, once: bool = False, stop: threading.Event | None = None) -> None:
    settings = load_settings()
    engine = make_engine(settings.database_url)
    migrate(engine)
    Session = make_sessionmaker(engine)
    redis = connect_redis(settings.redis_url)
    if redis is None:
        log.info("no TRACKER_REDIS_URL: leaderboards are read from the database, nothing to rebuild")
    stop = stop or threading.Event()
    if not once:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        try:
            done = run_once(Session, redis)
            if done:
                log.info("jobs done: %s", done)
        except Exception:  # noqa: BLE001 - a failed round is logged and retried next time
            log.exception("worker round failed")
        if once:
            break
        stop.wait(interval_s)
    engine.dispose()
