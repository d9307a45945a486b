"""The scheduled jobs of ``python -m core worker``:

- every 30 s, score the activities completed since (anomaly detection), so a flagged one
  is held out of leaderboards within a minute of completion;
- every three minutes (the seed's refresh interval), rebuild the Redis leaderboards, so an
  activity completed now counts at the next refresh (without Redis the boards are read
  from the database and there is nothing to rebuild), and recalibrate the flagging
  threshold from moderators' decisions;
- every ten minutes, close activities their devices abandoned a day ago (completed from
  their points, or discarded when they have none), delete expired web sessions and old
  failed sign-ins;
- once a day, retrain the anomaly model (also on demand: ``python -m core anomaly train``).

No job holds a write transaction for long: each computes first (reading needs no lock on
SQLite's WAL, nor on PostgreSQL) and writes each result in a short transaction of its own
(``core.db.write_transaction``), so the ingest server's group commit never waits behind a
job for more than a few tens of milliseconds. Each round logs the longest write
transaction per job (``write locks``).
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time

from core.accounts import PURGE_BATCH_ROWS, purge_expired_web_sessions, purge_old_login_attempts
from core.config import load_settings
from core.db import WRITE_LOCKS, make_engine, make_sessionmaker, write_transaction
from core.leaderboard import REFRESH_EVERY_S, connect_redis, refresh_redis
from core.openactivities import close_abandoned
from core.schema import migrate

log = logging.getLogger("core.worker")


SCORE_EVERY_S = 30.0
SCORE_BATCH = 200  # activities scored per round; a full round means a backlog, so the next starts at once
HOUSEKEEPING_EVERY_S = 600.0


class Jobs:
    """The worker's state between rounds: the model and when each job last ran."""

    def __init__(self, settings, Session, redis):
        self.settings, self.Session, self.redis = settings, Session, redis
        self.model = None
        self.trained_at = 0.0
        self.boards_at = -math.inf
        self.housekeeping_at = -math.inf

    def round(self, now: float | None = None) -> dict:
        """Run whatever is due; returns what it did."""
        from core.anomaly import store

        now = time.monotonic() if now is None else now
        done = {}
        if self.model is None:  # first round: the saved model, if there is a good one
            try:
                self.model = store.load_model(self.settings)
            except store.ModelFileError as exc:
                log.warning("%s; retraining", exc)
            self.trained_at = now
        if self.model is None or now - self.trained_at >= store.RETRAIN_EVERY_S:
            self.model = store.train(self.settings, self.Session, say=log.info)
            self.trained_at = now
            done["anomaly_model"] = "trained"
        began = time.monotonic()
        scored = store.score_pending(self.Session, self.model, store.threshold(self.settings), batch=SCORE_BATCH)
        if scored:
            done["scored"] = {"activities": scored, "seconds": round(time.monotonic() - began, 3)}
        if now - self.boards_at >= REFRESH_EVERY_S:
            self.boards_at = now
            done.update(run_once(self.Session, self.redis))
            with self.Session() as s:
                calibration = store.recalibrate(s, self.settings)
            if calibration.get("changed"):
                done["threshold"] = calibration["threshold"]
        if now - self.housekeeping_at >= HOUSEKEEPING_EVERY_S:
            self.housekeeping_at = now
            done.update(housekeeping(self.Session))
        locks = WRITE_LOCKS.snapshot(reset=True)
        if locks:
            done["write_locks"] = locks
        return done


def housekeeping(Session) -> dict:
    """Close abandoned activities; delete expired web sessions and old failed sign-ins."""
    done = {}
    closed = close_abandoned(Session)
    if any(closed.values()):
        done["abandoned"] = closed
    sessions = _purge(Session, "purge_sessions", purge_expired_web_sessions)
    attempts = _purge(Session, "purge_sign_ins", purge_old_login_attempts)
    if sessions or attempts:
        done["purged"] = {"web_sessions": sessions, "failed_sign_ins": attempts}
    return done


def run_once(Session, redis) -> dict:
    """One leaderboard refresh; returns what it did."""
    done = {}
    if redis is not None:
        began = time.monotonic()
        with Session() as s:
            sizes = refresh_redis(s, redis)
        done["leaderboards"] = {"boards": len(sizes), "athletes": sum(sizes.values()),
                                "seconds": round(time.monotonic() - began, 3)}
    return done


def run(interval_s: float = SCORE_EVERY_S, once: bool = False, stop: threading.Event | None = None) -> None:
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
    jobs = Jobs(settings, Session, redis)
    while not stop.is_set():
        done = {}
        try:
            done = jobs.round()
            if done:
                log.info("jobs done: %s", json.dumps(done, default=str))
        except Exception:  # noqa: BLE001 - a failed round is logged and retried next time
            log.exception("worker round failed")
        if once:
            break
        behind = done.get("scored", {}).get("activities", 0) >= SCORE_BATCH
        stop.wait(0 if behind else interval_s)
    engine.dispose()


def _purge(Session, job: str, purge) -> int:
    """Run a purge one batch per short transaction until a batch comes back short."""
    total = 0
    while True:
        with write_transaction(Session, job) as s:
            n = purge(s)
        total += n
        if n < PURGE_BATCH_ROWS:
            return total
