"""The scheduled jobs of ``python -m core worker``:

- every round (30 s), first complete the activities made from phone apps' fixes whose device
  went quiet for ``TRACKER_DEVICE_IDLE_COMPLETE_S``, and recompute those a late fix changed
  after completion (``core.jobs.devices``);
- every 30 s, score the activities completed since (anomaly detection), so a flagged one
  is held out of leaderboards within a minute of completion; with Redis, through a stream
  that every worker reads as one consumer group, so they share the scoring
  (``core.jobs.stream``);
- every round too, work out the distance others are shown of the activities completed or
  changed since, and of all an athlete's after a change of what they hide, so that boards
  add up only that (``core.jobs.shown``);
- every round too, match the activities completed or changed since against the routes
  near them (``core.routes``), 50 at a time, after scoring, so a held activity forms no route;
- every round too, after routes, assign this week's challenges to up to 500 athletes who
  have none for their current week, then recount the badges and challenge progress of up to
  50 athletes whose activities were scored, released, held, cropped or deleted since
  (``core.challenges``), so a flagged activity earns nothing and a confirmed cheat's badges
  and completions are withdrawn, and let the adaptive challenge policy learn from up to 500
  weeks whose following week is over;
- in a thread of its own, every 10 s, build the athletes' asked-for archives of their data
  one at a time, and delete those kept past their time (``core.jobs.export``), so a large
  archive delays none of the jobs above;
- once a week (a week after its last run), retrain the engagement
  model on the database's history and score every athlete active in the last eight weeks
  (``core.jobs.engagement``), before the challenge assignment that reads the risks;
- every six hours, retrain the route suggestions and precompute each active athlete's
  list (``core.recommend``);
- every three minutes (the seed's refresh interval), rebuild the Redis leaderboards, so an
  activity completed now counts at the next refresh (without Redis the boards are read
  from the database and there is nothing to rebuild), and recalibrate the flagging
  threshold from moderators' decisions;
- every ten minutes, close activities their devices abandoned a day ago (completed from
  their points, or discarded when they have none), delete expired web sessions and old
  failed sign-ins, and mark the challenges of weeks that are over as missed;
- every hour, archive up to 200 old activities' points and bring back up to 200 archived
  activities read often (``core.jobs.tiers``, ``core.storage.tiers``);
- once a day, retrain the anomaly model (also on demand: ``python -m core anomaly train``).

Several workers can run at once (on other machines too, on PostgreSQL): each job runs in
one of them at a time, the one holding its lock (``core.jobs.locks``), and another takes it
over when that one ends. The jobs run in groups that keep their order: ``activities``
(completing devices' activities, scoring, routes, the engagement model, challenges, badges
and challenge levels, in that order, with the anomaly model), ``leaderboards`` (with the
recalibration), ``recommendations``, ``tiers``, ``housekeeping`` and ``exports``.

No job holds a write transaction for long: each computes first (reading needs no lock on
SQLite's WAL, nor on PostgreSQL) and writes each result in a short transaction of its own
(``core.storage.engine.write_transaction``), so the ingest server's group commit never waits behind a
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

from redis.exceptions import RedisError

from core.anomaly.calibration import threshold
from core.anomaly.failures import Pause, count_given_up
from core.challenges.churn_store import current_model
from core.config import load_settings
from core.jobs.badges import (
    ASSIGN_BATCH,
    BADGE_BATCH,
    assign_challenges,
    award_badges,
    end_challenge_weeks,
    learn_challenge_levels,
)
from core.jobs.devices import DEVICE_BATCH, device_activities, recompute_late
from core.jobs.devices import count_given_up as count_recompute_given_up
from core.jobs.engagement import RETRY_EVERY_S, engagement_due, score_engagement
from core.jobs.export import build_exports
from core.jobs.housekeeping import HOUSEKEEPING_EVERY_S, housekeeping
from core.jobs.leaderboards import REFRESH_EVERY_S, run_once
from core.jobs.locks import JobLocks
from core.jobs.metrics import MetricsPortError, WorkerMetrics
from core.jobs.recommendations import RECOMMEND_EVERY_S, train_recommendations
from core.jobs.routes import ROUTE_BATCH, match_routes
from core.jobs.scoring import SCORE_BATCH, ModelKeeper, calibrate, score
from core.jobs.shown import settle_shown_distances
from core.jobs.stream import TAKE, StreamScorer, relay, relay_late
from core.jobs.tiers import TIERS_EVERY_S, move_tiers
from core.social.leaderboards import connect_redis
from core.storage.base import utcnow
from core.storage.engine import WRITE_LOCKS, make_engine, make_sessionmaker
from core.storage.schema import migrate

log = logging.getLogger(__name__)

SCORE_EVERY_S = 30.0
EXPORT_EVERY_S = 10.0

__all__ = ["GROUPS", "Jobs", "housekeeping", "run", "run_once"]

GROUPS = ("activities", "leaderboards", "recommendations", "tiers", "housekeeping", "exports")


class Jobs:
    """The worker's state between rounds: the model, when each job last ran, and which job
    groups this process runs (``locks``: ``core.jobs.locks.JobLocks``; None runs them all)."""

    def __init__(self, settings, Session, redis, metrics: WorkerMetrics | None = None,
                 locks: JobLocks | None = None):
        self.settings, self.Session, self.redis = settings, Session, redis
        self.locks = locks
        self.keeper = ModelKeeper(settings, Session)
        self.scoring_pause = Pause()  # after rounds of scoring that failed as a whole
        self.scorer = StreamScorer(settings, Session, redis) if redis is not None else None
        self.boards_at = -math.inf
        self.housekeeping_at = -math.inf
        self.recommend_at = -math.inf
        self.engagement_at = -math.inf
        self.tiers_at = -math.inf
        self.audit_at = -math.inf
        self.metrics = metrics or WorkerMetrics()

    @property
    def model(self):
        return self.keeper.model

    def mine(self, group: str) -> bool:
        """Whether this process runs ``group`` now (it holds or takes its lock)."""
        ours = self.locks is None or self.locks.mine(group)
        self.metrics.held.labels(group).set(1 if ours else 0)
        if not ours:
            self.metrics.skipped.labels(group).inc()
        return ours

    def round(self, now: float | None = None, wall: float | None = None) -> dict:
        """Run whatever is due; returns what it did. ``now`` is the schedule's clock
        (monotonic), ``wall`` the time of day (Unix seconds) the fix-stream job goes by.
        Each job's duration goes to ``metrics`` (``core.jobs.metrics``)."""
        now = time.monotonic() if now is None else now
        done = {}
        timed = self.metrics.timed
        if self.mine("activities"):
            self._activities(now, wall, done)
        else:
            self.metrics.given_up.set(0)  # the holder of the group counts them
            self.metrics.recompute_given_up.set(0)
            if self.scorer is not None:
                with timed("scoring"):
                    self._score_from_stream(done)
        if now - self.boards_at >= REFRESH_EVERY_S and self.mine("leaderboards"):
            self.boards_at = now
            with timed("leaderboards"):
                done.update(run_once(self.Session, self.redis))
                calibrate(self.Session, self.settings, done)
        if now - self.recommend_at >= RECOMMEND_EVERY_S and self.mine("recommendations"):
            self.recommend_at = now
            with timed("recommendations"):
                done.update(train_recommendations(self.Session, self.settings))
        if now - self.tiers_at >= TIERS_EVERY_S and self.mine("tiers"):
            self.tiers_at = now
            with timed("tiers"):
                done.update(move_tiers(self.Session, self.settings))
        if now - self.housekeeping_at >= HOUSEKEEPING_EVERY_S and self.mine("housekeeping"):
            self.housekeeping_at = now
            with timed("housekeeping"):
                done.update(housekeeping(self.Session))
                done.update(end_challenge_weeks(self.Session))
        locks = WRITE_LOCKS.snapshot(reset=True)
        if locks:
            done["write_locks"] = locks
        self.metrics.rounds.inc()
        return done

    def _score_from_stream(self, done: dict, model=None, own: bool = False) -> bool:
        """Score from the shared stream (``core.jobs.stream``); the holder of ``activities``
        (``own``: with the model it keeps) relays what is to score into it first. False if
        Redis failed."""
        try:
            if own:
                relayed = relay(self.Session, self.scorer.stream)
                if relayed:
                    done["relayed"] = relayed
                relayed = relay_late(self.Session, self.scorer.late)
                if relayed:
                    done["relayed_late"] = relayed
            done.update(self.scorer.round(threshold(self.settings), model, own=own))
            self.metrics.stream_lag.set(self.scorer.lag())
        except RedisError:  # scored from the database this round; other errors fail the round
            log.warning("the scoring stream failed", exc_info=True)
            return False
        self.metrics.scored.inc(done.get("scored", {}).get("activities", 0))
        return True

    def _activities(self, now: float, wall: float | None, done: dict) -> None:
        """The ``activities`` group: each step reads what the one before wrote."""
        timed = self.metrics.timed
        with timed("model"):
            model = self.keeper.current(now, done)
        with timed("devices"):
            # With the stream, late fixes' recomputations are shared through it (below).
            done.update(device_activities(self.Session, self.settings.device_idle_complete_s, model,
                                          threshold(self.settings), now=wall, late=self.scorer is None))
        with timed("scoring"):
            if self.scorer is None or not self._score_from_stream(done, model, own=True):
                if self.scorer is not None:  # Redis failed: this round recomputes here too
                    late = {k: v for k, v in recompute_late(self.Session, model, threshold(self.settings)).items() if v}
                    if late:
                        done["late"] = late
                score(self.Session, self.settings, model, done, pause=self.scoring_pause)
                self.metrics.scored.inc(done.get("scored", {}).get("activities", 0))
            with self.Session() as s:
                self.metrics.given_up.set(count_given_up(s))
                self.metrics.recompute_given_up.set(count_recompute_given_up(s))
        audit = now - self.audit_at >= HOUSEKEEPING_EVERY_S  # every ten minutes
        if audit:
            self.audit_at = now
        with timed("shown"):
            done.update(settle_shown_distances(self.Session))
        with timed("routes"):
            done.update(match_routes(self.Session, audit=audit))
        if now - self.engagement_at >= RETRY_EVERY_S and engagement_due(self.settings, utcnow()):
            self.engagement_at = now  # before the assignment, so the week's challenges see the risks
            with timed("engagement"):
                done.update(score_engagement(self.Session, self.settings))
        with timed("challenges"):
            done.update(assign_challenges(self.Session, policy=self.settings.challenge_policy,
                                          risk_model=current_model(self.settings)))
        with timed("badges"):
            done.update(award_badges(self.Session))
        with timed("challenge_levels"):
            done.update(learn_challenge_levels(self.Session))


def export_loop(Session, settings, stop: threading.Event, every_s: float = EXPORT_EVERY_S,
                metrics: WorkerMetrics | None = None, locks: JobLocks | None = None) -> None:
    """Build the asked-for archives, one at a time, until ``stop`` (while this process holds
    the ``exports`` lock, when ``locks`` are given)."""
    while not stop.is_set():
        done = {}
        if locks is not None and not locks.mine("exports"):
            if metrics is not None:
                metrics.held.labels("exports").set(0)
                metrics.skipped.labels("exports").inc()
            stop.wait(every_s)
            continue
        if metrics is not None:
            metrics.held.labels("exports").set(1)
        try:
            done = build_exports(Session, settings)
            if metrics is not None:
                metrics.exports.inc(done.get("exports", {}).get("built", 0))
            if done:
                log.info("jobs done: %s", json.dumps(done, default=str))
        except Exception:  # noqa: BLE001 - logged and tried again
            log.exception("export round failed")
        if not done:
            stop.wait(every_s)


def run(interval_s: float = SCORE_EVERY_S, once: bool = False, stop: threading.Event | None = None) -> None:
    """Run the rounds until ``stop`` (or one with ``once``); a bad configuration or a metrics
    port that cannot be opened ends the process with a one-line reason (SystemExit)."""
    try:
        settings = load_settings()
    except ValueError as exc:
        raise SystemExit(f"python -m core worker: {exc}") from None
    metrics = WorkerMetrics(write_locks=True)
    served = None
    if settings.worker_metrics_port is not None and not once:
        try:  # before anything else: a port taken by another worker is the usual mistake
            served = metrics.serve(settings.worker_metrics_port, settings.worker_metrics_host)
        except MetricsPortError as exc:
            metrics.close()
            raise SystemExit(f"python -m core worker: {exc} (TRACKER_WORKER_METRICS_HOST, TRACKER_WORKER_METRICS_PORT)") from None
        log.info("metrics on %s:%s/metrics", settings.worker_metrics_host, settings.worker_metrics_port)
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
    locks, export_locks = JobLocks(engine), JobLocks(engine)  # the export thread's own connection
    jobs = Jobs(settings, Session, redis, metrics, locks)
    if once:
        if export_locks.mine("exports"):
            build_exports(Session, settings)
    else:
        threading.Thread(target=export_loop, args=(Session, settings, stop),
                         kwargs={"metrics": metrics, "locks": export_locks}, name="exports", daemon=True).start()
    while not stop.is_set():
        done = {}
        try:
            done = jobs.round()
            if done:
                log.info("jobs done: %s", json.dumps(done, default=str))
        except Exception:  # noqa: BLE001 - a failed round is logged and retried next time
            metrics.round_failures.inc()
            log.exception("worker round failed")
        if once:
            break
        routed = sum(v for k, v in done.get("routes", {}).items() if k in ("matched", "new", "none"))
        devices = done.get("devices", {})
        closed = devices.get("completed", 0) + devices.get("discarded", 0)
        behind = (done.get("scored", {}).get("activities", 0) >= SCORE_BATCH or routed >= ROUTE_BATCH
                  or done.get("scored", {}).get("taken", 0) >= TAKE
                  or done.get("recomputed_late", {}).get("taken", 0) >= TAKE
                  or done.get("badges", {}).get("athletes", 0) >= BADGE_BATCH
                  or done.get("challenges", {}).get("athletes", 0) >= ASSIGN_BATCH
                  or closed >= DEVICE_BATCH or devices.get("recomputed", 0) >= DEVICE_BATCH
                  or done.get("shown", {}).get("behind", False))
        stop.wait(0 if behind else interval_s)
    metrics.close()
    locks.close()
    if once:
        export_locks.close()  # else the export thread may still use it: the process's end releases it
    if served is not None:
        served.shutdown()
    engine.dispose()
