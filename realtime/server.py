"""The websocket ingest server: authentication, connections, group commit, live stats.

A handful of small coroutines: ``process_request`` answers /healthz and checks the device
token before the upgrade; ``handler`` runs one connection; ``committer`` writes the points
of all connections in shared transactions and acknowledges each batch only after its
transaction has committed; ``idle_sweeper`` closes silent connections; ``run`` ties them
together and drains on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import http
import json
import logging
import signal
import sys
import time
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from core.activities import live_board as livestate
from core.activities.cues import CuePrefs
from core.activities.lifecycle import OPEN_STATUSES, ActivityError
from core.activities.live import LiveStats, replay_live
from core.anomaly.live import VehicleWatch
from core.config import load_settings
from core.social.feed import CursorError
from realtime import protocol
from realtime.protocol import Create, Cues, Feed, Points, ProtocolError, Status
from realtime.store import CHECKPOINT_EVERY_S, ActivityInfo, DatabaseBusy, Identity, Store, is_busy

log = logging.getLogger("realtime")

IDLE_TIMEOUT_S = 300.0
RATE_PER_S = 50.0
RATE_BURST = 100.0
FLOOD_STRIKES = 200  # rate-limited messages in a row before the connection is closed
CLOSE_IDLE = 4000
GROUP_WAIT_S = 0.001  # how long a commit waits for more batches to join it
CLOSE_FLOOD = 1008
SUGGEST_PAUSE_WITHIN_S = 120.0  # a vehicle stretch older than this gets no pause suggestion
LIVE_PUBLISH_S = 1.0  # how often live state goes to Redis for the dashboard
# Garbage collector thresholds for a process holding thousands of long-lived connections.
# With CPython's defaults (700, 10, 10), full collections ran every few seconds while
# connections came in, each one walking every connection's objects and stopping the event
# loop: up to 275 ms at 5,000 connections, which made the p99 ack latency 40 to 300 ms in
# bench/connections.py. Young garbage still goes at every 50,000 net allocations.
GC_THRESHOLDS = (50_000, 20, 10)
# A busy database (another writer's transaction) delays the group commit, never fails it:
# the batches wait, new ones join them, and the commit is tried again after a backoff.
BUSY_RETRY_FIRST_S = 0.002
BUSY_RETRY_MAX_S = 0.1
BUSY_WARN_AFTER_S = 5.0
DRAIN_TIMEOUT_S = 30.0  # the longest a shutdown waits for a locked database
MAX_UNSETTLED_PER_CONNECTION = 64  # batches one connection may have waiting for the group commit
TOKEN_CHECK_EVERY_S = 2.0  # how soon a revoked device token's connections are closed
CLOSE_REVOKED = 4001
# Per-activity state (live stats, the vehicle watch) is dropped when no message has
# touched the activity for this long; a device that comes back gets it rebuilt from storage.
ACTIVITY_IDLE_S = 900.0


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with whatever context the call passed in ``extra``."""

    FIELDS = ("user", "activity_id", "code", "stored", "duplicates", "batch", "status", "remote", "speed_kmh")

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "event": record.getMessage()}
        for name in self.FIELDS:
            if hasattr(record, name):
                out[name] = getattr(record, name)
        return json.dumps(out)


@dataclass(slots=True)
class PendingBatch:
    ws: ServerConnection
    msg: Points
    activity_id: int
    rows: list[tuple]
    acked: bool = False
    waiters: list[asyncio.Future] | None = None  # commands held until this ack

    def settle(self) -> None:
        self.acked = True
        for waiter in self.waiters or ():
            if not waiter.done():
                waiter.set_result(None)


@dataclass
class TokenBucket:
    """Per-connection rate limit."""

    rate: float = RATE_PER_S
    burst: float = RATE_BURST
    tokens: float = RATE_BURST
    stamp: float = field(default_factory=time.monotonic)

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class IngestServer:
    """One ingest process: its store, its live state and its websocket server."""

    def __init__(self, store: Store, idle_timeout_s: float = IDLE_TIMEOUT_S, rate_per_s: float = RATE_PER_S,
                 redis_url: str | None = None):
        self.store = store
        # Live state for the dashboard, through Redis when configured: activities whose
        # stats changed are published once a second by ``live_publisher``.
        self.redis_url = redis_url
        self.live_dirty: set[int] = set()
        self.live_ended: list[int] = []
        self.idle_timeout_s = idle_timeout_s
        self.rate_per_s = rate_per_s
        # Batches waiting for the group commit; ``queued`` wakes the committer and
        # ``unsettled`` counts batches not yet acknowledged (the shutdown drains it).
        self.queue: list[PendingBatch] = []
        self.queued = asyncio.Event()
        self.unsettled = 0
        self.drained = asyncio.Event()
        self.activities: dict[int, ActivityInfo] = {}
        self.live: dict[int, LiveStats] = {}
        # The live anomaly check: a sustained vehicle-speed stretch gets a pause suggestion.
        self.watch: dict[int, VehicleWatch] = {}
        self.prefs: dict[int, CuePrefs] = {}
        self.touched: dict[int, float] = {}  # activity id -> when a message last touched it
        self.commits = 0
        self.batches_committed = 0
        self.busy_retries = 0
        self.last_seen: dict[ServerConnection, float] = {}
        # How many batches each connection has waiting for the group commit.
        self.inflight: dict[ServerConnection, int] = {}
        # The newest batch each connection has waiting for the group commit.
        self.pending: dict[ServerConnection, PendingBatch] = {}

    async def db(self, fn, *args):
        """Run a Store method on the database thread; a busy database (another writer held
        its lock past the busy timeout) is tried again after a backoff, never answered as a
        fault."""
        delay = BUSY_RETRY_FIRST_S
        while True:
            try:
                return await asyncio.get_running_loop().run_in_executor(self.store.executor, fn, *args)
            except Exception as exc:
                if not is_busy(exc):
                    raise
                self.busy_retries += 1
                log.warning(f"database busy for {fn.__name__}; retrying")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer /healthz; refuse the upgrade (401) without a valid device token."""
        if request.path.split("?", 1)[0] == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "missing device token (Authorization: Bearer ...)\n")
        identity = await self.db(self.store.authenticate, token.strip())
        if identity is None:
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "invalid or revoked device token\n")
        connection.identity = identity
        self.prefs.setdefault(identity.user_id, identity.cue_prefs)
        return None

    async def handler(self, ws: ServerConnection) -> None:
        """Run one device connection until it closes."""
        me: Identity = ws.identity
        bucket = TokenBucket(rate=self.rate_per_s, burst=max(self.rate_per_s * 2, 1))
        strikes = 0
        self.last_seen[ws] = time.monotonic()
        log.info("connected", extra={"user": me.username, "remote": str(ws.remote_address)})
        await ws.send(protocol.dumps(protocol.welcome_message(me.username)))
        try:
            while True:
                raw = await ws.recv()
                now = time.monotonic()
                self.last_seen[ws] = now
                if not bucket.take(now):
                    strikes += 1
                    if strikes >= FLOOD_STRIKES:
                        await ws.close(CLOSE_FLOOD, "message flood")
                        return
                    await self.send_error(ws, ProtocolError("rate_limited", protocol.ERROR_CODES["rate_limited"]))
                    continue
                strikes = 0
                await self.dispatch(ws, me, raw)
        except ConnectionClosed:
            pass
        finally:
            self.last_seen.pop(ws, None)
            self.pending.pop(ws, None)
            self.inflight.pop(ws, None)
            log.info("disconnected", extra={"user": me.username})

    async def dispatch(self, ws: ServerConnection, me: Identity, raw) -> None:
        """Parse one message and answer it; errors become error messages, never crashes."""
        try:
            msg = protocol.parse(raw)
        except ProtocolError as exc:
            await self.send_error(ws, exc)
            return
        try:
            if type(msg) is Points:  # the hot path: no coroutine of its own unless the activity is new here
                info = self.activities.get(msg.activity_id)
                if info is None or info.user_id != me.user_id:
                    info = await self.activity_for(me, msg.activity_id)
                self.enqueue(ws, info, msg)
                return
            # Keep each connection's order: its earlier points are committed and
            # acknowledged before a later command runs.
            waiting = self.pending.get(ws)
            if waiting is not None and not waiting.acked:
                waiter = asyncio.get_running_loop().create_future()
                if waiting.waiters is None:
                    waiting.waiters = []
                waiting.waiters.append(waiter)
                await waiter
            handler = {Status: self.on_status, Create: self.on_create, Feed: self.on_feed,
                       Cues: self.on_cues}[type(msg)]
            await handler(ws, me, msg)
        except ActivityError as exc:
            await self.send_error(ws, ProtocolError(exc.code, str(exc), msg.id))
        except CursorError as exc:
            await self.send_error(ws, ProtocolError("invalid_value", str(exc), msg.id))
        except ConnectionClosed:
            raise
        except Exception:  # noqa: BLE001 - one bad message must not take the connection down
            log.exception("internal error", extra={"user": me.username})
            await self.send_error(ws, ProtocolError("internal", protocol.ERROR_CODES["internal"], msg.id))

    async def send_error(self, ws: ServerConnection, exc: ProtocolError) -> None:
        log.info("error", extra={"code": exc.code})
        await ws.send(protocol.dumps(protocol.error_message(exc.code, exc.message, exc.request_id)))

    async def activity_for(self, me: Identity, activity_id: int) -> ActivityInfo:
        """The activity if it is the user's own, loading it (and its live state) on first use."""
        info = self.activities.get(activity_id)
        if info is None:
            info, points, pauses = await self.db(self.store.activity, activity_id, me.user_id)
            live = replay_live(info.sport, points, pauses, self.prefs.get(me.user_id, CuePrefs()))
            live.due_cues()  # cues already spoken before a restart are not repeated
            self.activities[activity_id] = info
            self.live.setdefault(activity_id, live)
            self.watch.setdefault(activity_id, VehicleWatch(info.sport))
        if info.user_id != me.user_id:
            raise ActivityError(f"no activity {activity_id} for this user", "not_found")
        return info

    async def on_create(self, ws, me: Identity, msg: Create) -> None:
        info = await self.db(self.store.create, me.user_id, msg.sport, msg.title, msg.visibility, msg.client_ref)
        self.activities[info.id] = info
        self.touched[info.id] = time.monotonic()
        self.live.setdefault(info.id, LiveStats(info.sport, self.prefs.get(me.user_id, CuePrefs())))
        self.watch.setdefault(info.id, VehicleWatch(info.sport))
        log.info("created", extra={"user": me.username, "activity_id": info.id})
        await ws.send(protocol.dumps({"type": "created", "id": msg.id, "activity_id": info.id,
                                      "status": info.status, "client_ref": msg.client_ref}))

    async def on_status(self, ws, me: Identity, msg: Status) -> None:
        await self.activity_for(me, msg.activity_id)
        self.touched[msg.activity_id] = time.monotonic()
        # The event's time, as stored: live stats pause by it, not by when the message came
        # (an offline device syncs its commands before its points).
        at = msg.at if msg.at is not None else time.time()
        info = await self.db(self.store.change_status, msg.activity_id, me.user_id, msg.command, at)
        self.activities[info.id] = info
        live = self.live.get(info.id)
        if live is not None:
            if info.status in ("paused", "stopped"):
                live.pause(at)
            elif info.status == "active":
                live.resume(at)
        if info.status != "active":  # after a pause the watch starts afresh
            self.watch[info.id] = VehicleWatch(info.sport)
        if info.status in ("completed", "discarded"):
            self.forget(info.id)
            if self.redis_url:
                self.live_dirty.discard(info.id)
                self.live_ended.append(info.id)
        elif self.redis_url:
            self.live_dirty.add(info.id)
        log.info("status", extra={"user": me.username, "activity_id": info.id, "status": info.status})
        await ws.send(protocol.dumps({"type": "status", "id": msg.id, "activity_id": info.id,
                                      "status": info.status}))

    def enqueue(self, ws, info: ActivityInfo, msg: Points) -> None:
        """Queue a batch of the activity's owner for the group commit; the committer
        acknowledges it once durable."""
        if info.status not in OPEN_STATUSES:
            raise ActivityError(f"activity {info.id} is {info.status}: it takes no more points", "activity_closed")
        waiting = self.inflight.get(ws, 0)
        if waiting >= MAX_UNSETTLED_PER_CONNECTION:  # a busy database must not let one connection pile up memory
            raise ActivityError(f"{waiting} batches are waiting for the database: wait for their acks",
                                "rate_limited")
        self.inflight[ws] = waiting + 1
        pending = PendingBatch(ws, msg, info.id, [p.row(info.id) for p in msg.points])
        self.touched[info.id] = self.last_seen.get(ws, 0.0)
        self.pending[ws] = pending
        self.queue.append(pending)
        self.unsettled += 1
        self.queued.set()

    async def acknowledge(self, pending: PendingBatch, stored) -> None:
        """Answer one committed batch: the ack with live stats, then any cue now due."""
        ws, msg = pending.ws, pending.msg
        if isinstance(stored, Exception):
            code = stored.code if isinstance(stored, ActivityError) else "internal"
            text = str(stored) if isinstance(stored, ActivityError) else protocol.ERROR_CODES["internal"]
            await ws.send(protocol.dumps(protocol.error_message(code, text, msg.id)))
            return
        activity_id = pending.activity_id
        live = self.live.get(activity_id)
        cues: list[str] = []
        warning = None
        if live is not None:
            watch = self.watch.get(activity_id)
            points = msg.points
            if len(points) > 1:
                points = sorted((p for p in points if p.seq in stored), key=lambda p: p.t)
            elif points and points[0].seq not in stored:
                points = ()
            for p in points:
                live.add(p.t, p.lat, p.lon)
                if watch is not None and not live.paused:
                    warning = watch.add(p.t, p.lat, p.lon, p.ele) or warning
            cues = live.due_cues()
            # Only while it matters: a stretch synced long after the fact gets no suggestion.
            if warning is not None and time.time() - points[-1].t > SUGGEST_PAUSE_WITHIN_S:
                warning = None
        if self.redis_url:  # nobody drains the set without a publisher
            self.live_dirty.add(activity_id)
        await ws.send(protocol.dumps_utf8({
            "type": "ack", "id": msg.id, "activity_id": activity_id, "stored": len(stored),
            "duplicates": len(msg.points) - len(stored),
            "stats": live.snapshot() if live is not None else None}), text=True)
        for text in cues:
            await ws.send(protocol.dumps({"type": "cue", "activity_id": activity_id, "text": text}))
        if warning is not None:
            log.info("suggest_pause", extra={"activity_id": activity_id, "speed_kmh": warning["speed_kmh"]})
            await ws.send(protocol.dumps({"type": "suggest_pause", "activity_id": activity_id, **warning}))

    async def on_feed(self, ws, me: Identity, msg: Feed) -> None:
        page = await self.db(self.store.feed, me.user_id, msg.cursor, msg.limit)
        await ws.send(protocol.dumps({"type": "feed", "id": msg.id, **page}))

    async def on_cues(self, ws, me: Identity, msg: Cues) -> None:
        prefs = CuePrefs(fields=msg.fields, every_km=msg.every_km, every_min=msg.every_min)
        await self.db(self.store.save_cues, me.user_id, prefs)
        self.prefs[me.user_id] = prefs
        await ws.send(protocol.dumps({"type": "cues", "id": msg.id, **prefs.to_settings()}))

    async def live_publisher(self, every_s: float = LIVE_PUBLISH_S) -> None:
        """Publish the live state of changed activities to Redis, once per ``every_s``."""
        from redis.asyncio import Redis

        redis = Redis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=5)
        try:
            while True:
                await asyncio.sleep(every_s)
                dirty, self.live_dirty = self.live_dirty, set()
                ended, self.live_ended = self.live_ended, []
                records = []
                for activity_id in dirty:
                    info = self.activities.get(activity_id)
                    if info is not None:
                        records.append(livestate.record(info.id, info.user_id, info.sport, info.status,
                                                        self.live.get(activity_id)))
                try:
                    await livestate.publish(redis, records, ended)
                except Exception:  # noqa: BLE001 - Redis is a cache here: log, carry on ingesting
                    log.warning("could not publish live state to Redis", exc_info=True)
        finally:
            await redis.aclose()

    async def drain(self) -> None:
        """Wait until every queued batch has been committed and answered."""
        while self.unsettled:
            self.drained.clear()
            await self.drained.wait()

    def forget(self, activity_id: int) -> None:
        """Drop what this process keeps about an activity (rebuilt from storage if it returns)."""
        self.activities.pop(activity_id, None)
        self.live.pop(activity_id, None)
        self.watch.pop(activity_id, None)
        self.touched.pop(activity_id, None)

    def evict_idle_activities(self, now: float) -> int:
        """Forget activities no message has touched for ``ACTIVITY_IDLE_S`` and that have no
        batch waiting; returns how many."""
        waiting = {b.activity_id for b in self.queue}
        stale = [aid for aid in self.activities
                 if now - self.touched.get(aid, 0.0) > ACTIVITY_IDLE_S and aid not in waiting]
        for activity_id in stale:
            self.forget(activity_id)
            if self.redis_url:
                self.live_dirty.discard(activity_id)
        return len(stale)

    async def idle_sweeper(self) -> None:
        """Close connections that have sent nothing for ``idle_timeout_s`` (code 4000), and
        forget activities nobody has touched for ``ACTIVITY_IDLE_S``."""
        while True:
            await asyncio.sleep(min(self.idle_timeout_s / 4, 30.0))
            now = time.monotonic()
            cutoff = now - self.idle_timeout_s
            for ws, seen in list(self.last_seen.items()):
                if seen < cutoff:
                    self.last_seen.pop(ws, None)
                    asyncio.create_task(ws.close(CLOSE_IDLE, "idle timeout"))
            self.evict_idle_activities(now)

    async def token_watch(self, server, every_s: float = TOKEN_CHECK_EVERY_S) -> None:
        """Close the connections of device tokens revoked (or deleted with their athlete)
        since they connected, within ``every_s``: one indexed query for all of them."""
        while True:
            await asyncio.sleep(every_s)
            by_token: dict[int, list[ServerConnection]] = {}
            for ws in list(server.connections):
                identity = getattr(ws, "identity", None)
                if identity is not None and identity.token_id:
                    by_token.setdefault(identity.token_id, []).append(ws)
            if not by_token:
                continue
            try:
                revoked = await self.db(self.store.revoked_tokens, list(by_token))
            except Exception:  # noqa: BLE001 - checked again next round
                log.warning("could not check device tokens", exc_info=True)
                continue
            for token_id in revoked:
                for ws in by_token[token_id]:
                    log.info("token revoked: closing", extra={"user": ws.identity.username})
                    asyncio.create_task(ws.close(CLOSE_REVOKED, "device token revoked"))

    async def checkpointer(self, every_s: float = CHECKPOINT_EVERY_S) -> None:
        """Checkpoint the SQLite WAL now and then on the database thread, not in a commit."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.db(self.store.checkpoint)
            except Exception:  # noqa: BLE001 - the next round tries again; commits are unaffected
                log.warning("WAL checkpoint failed", exc_info=True)

    async def committer(self) -> None:
        """Write queued batches, many connections per transaction, then acknowledge them.

        The commit runs on the event loop's own thread: while it runs, new messages wait
        in the sockets and join the next transaction, and no thread hand-off or lock
        contention is paid per batch (measured faster than a writer thread on both
        databases in bench/ingest_live.py and bench/ingest_sync.py).
        """
        busy_since: float | None = None
        warned = 0.0
        retry_s = BUSY_RETRY_FIRST_S
        while True:
            if not self.queue:
                await self.queued.wait()
            # A millisecond lets the connections whose messages are already arriving queue
            # them too, so they join this transaction instead of paying for a commit each.
            await asyncio.sleep(GROUP_WAIT_S)
            batch, self.queue = self.queue, []
            self.queued.clear()
            try:
                results = self.store.commit_batches([(b.activity_id, b.rows) for b in batch])
            except DatabaseBusy:
                # Nothing was written: the batches go back in front of any that arrived
                # since (each connection's order is kept) and the commit is tried again.
                self.queue = batch + self.queue
                self.busy_retries += 1
                now = time.monotonic()
                if busy_since is None:
                    busy_since, warned = now, now
                elif now - warned >= BUSY_WARN_AFTER_S:
                    warned = now
                    log.warning(f"database busy for {now - busy_since:.1f} s: {len(self.queue)} batches waiting")
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, BUSY_RETRY_MAX_S)
                continue
            except Exception as exc:  # noqa: BLE001 - every waiting batch must hear about it
                log.exception("commit failed")
                results = [exc] * len(batch)
            busy_since, retry_s = None, BUSY_RETRY_FIRST_S
            self.commits += 1
            self.batches_committed += len(batch)
            for pending, result in zip(batch, results):
                try:
                    await self.acknowledge(pending, result)
                except ConnectionClosed:
                    pass  # the device resends what it did not see acknowledged
                finally:
                    pending.settle()
                    self.unsettled -= 1
                    waiting = self.inflight.get(pending.ws)
                    if waiting is not None:
                        self.inflight[pending.ws] = waiting - 1
            if not self.unsettled:
                self.drained.set()

    async def run(self, host: str, port: int, stop: asyncio.Future, ready: asyncio.Future | None = None) -> None:
        """Serve until ``stop`` resolves, then drain pending commits and close with 1001."""
        committer = asyncio.create_task(self.committer())
        sweeper = asyncio.create_task(self.idle_sweeper())
        # PostgreSQL checkpoints by itself; only SQLite's WAL is left to this process.
        checkpointer = asyncio.create_task(self.checkpointer()) if self.store.dialect == "sqlite" else None
        publisher = asyncio.create_task(self.live_publisher()) if self.redis_url else None
        async with serve(self.handler, host, port, process_request=self.process_request,
                         max_size=protocol.MAX_MESSAGE_BYTES, compression=None,
                         ping_interval=20, ping_timeout=20, close_timeout=5) as server:
            tokens = asyncio.create_task(self.token_watch(server))
            port = server.sockets[0].getsockname()[1]
            log.info(f"listening on {host}:{port}")
            if ready is not None and not ready.done():
                ready.set_result(port)
            await stop
            log.info("shutting down: flushing pending commits")
            server.close(close_connections=False)
            try:
                await asyncio.wait_for(self.drain(), DRAIN_TIMEOUT_S)
            except TimeoutError:
                # The database stayed locked: what is not acknowledged the devices resend.
                log.warning(f"{self.unsettled} batches not committed after {DRAIN_TIMEOUT_S:.0f} s; closing")
            for ws in list(server.connections):
                await ws.close(1001, "server shutting down")
            await server.wait_closed()
        committer.cancel()
        sweeper.cancel()
        tokens.cancel()
        if checkpointer is not None:
            checkpointer.cancel()
        if publisher is not None:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
        log.info(f"stopped after {self.commits} commits holding {self.batches_committed} batches")


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("realtime")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def tune_gc() -> None:
    """Collect what startup left, freeze the rest (modules, engine, metadata: they live as
    long as the process, so no collection need walk them again), then set ``GC_THRESHOLDS``."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def main_async(host: str, port: int, database_url: str | None, rate_per_s: float = RATE_PER_S) -> None:
    store = Store(database_url)
    tune_gc()
    server = IngestServer(store, rate_per_s=rate_per_s, redis_url=load_settings().redis_url)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    try:
        await server.run(host, port, stop)
    finally:
        store.close()
