"""The scheduled jobs of ``python -m core worker``:

- every 30 s, score the activities completed since (anomaly detection), so a flagged one
  is held out of leaderboards within a minute of completion;
- every three minutes (the seed's refresh interval), rebuild the Redis leaderboards, so an
  activity completed now counts at the next refresh (without Redis the boards are read
  from the database and there is nothing to rebuild), and recalibrate the flagging
  threshold from moderators' decisions;
- once a day, retrain the anomaly model (also on demand: ``python -m core anomaly train``).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time

from core.config import load_settings
from core.db import make_engine, make_sessionmaker
from core.leaderboard import REFRESH_EVERY_S, connect_redis, refresh_redis
from core.schema import migrate

log = logging.getLogger("core.worker")


SCORE_EVERY_S = 30.0


class Jobs:
    """The worker's state between rounds: the model and when each job last ran."""

    def __init__(self, settings, Session, redis):
        self.settings, self.Session, self.redis = settings, Session, redis
        self.model = None
        self.trained_at = 0.0
        self.boards_at = -math.inf

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
        with self.Session() as s, s.begin():
            scored = store.score_pending(s, self.model, store.threshold(self.settings))
        if scored:
            done["scored"] = {"activities": scored, "seconds": round(time.monotonic() - began, 3)}
        if now - self.boards_at >= REFRESH_EVERY_S:
            self.boards_at = now
            done.update(run_once(self.Session, self.redis))
            with self.Session() as s:
                calibration = store.recalibrate(s, self.settings)
            if calibration.get("changed"):
                done["threshold"] = calibration["threshold"]
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
        try:
            done = jobs.round()
            if done:
                log.info("jobs done: %s", done)
        except Exception:  # noqa: BLE001 - a failed round is logged and retried next time
            log.exception("worker round failed")
        if once:
            break
        stop.wait(interval_s)
    engine.dispose()
