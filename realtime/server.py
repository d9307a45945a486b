"""The websocket ingest server: authentication, connections and their messages.

``IngestServer`` is one ingest process. Its parts: ``process_request`` answers /healthz and
checks the device token before the upgrade; ``handler`` runs one connection and
``dispatch`` answers its messages; the group commit (realtime/commit.py) writes the points
of all connections in shared transactions, and ``acknowledge`` answers each batch only
after its transaction has committed; the per-activity live state (realtime/live_state.py)
gives every ack its stats and cues; the rounds in realtime/watchers.py close silent and
revoked connections; ``run`` ties them together and drains on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import time
from dataclasses import dataclass, field

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from core.activities.cues import CuePrefs
from core.activities.lifecycle import ActivityError
from core.social.feed import CursorError
from realtime import protocol
from realtime.commit import GroupCommit, PendingBatch
from realtime.live_state import LiveState
from realtime.metrics import CONTENT_TYPE
from realtime.protocol import Create, Cues, Feed, Points, ProtocolError, Recommendations, Status
from realtime.store import Identity, Store
from realtime.watchers import Watchers

log = logging.getLogger("realtime")

IDLE_TIMEOUT_S = 300.0
RATE_PER_S = 50.0
RATE_BURST = 100.0
FLOOD_STRIKES = 200  # rate-limited messages in a row before the connection is closed
KINDS = {Points: "points", Status: "status", Create: "create", Feed: "feed", Cues: "cues",
         Recommendations: "recommendations"}  # message kinds, as the metrics count them
CLOSE_FLOOD = 1008
DRAIN_TIMEOUT_S = 30.0  # the longest a shutdown waits for a locked database


def publisher_ended(task: asyncio.Task) -> None:
    """Say at once why the live publisher stopped, when it failed: the Live page no longer
    shows this process's athletes, while ingest goes on."""
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.error(f"live state is no longer published to Redis: {type(exc).__name__}: {exc}", exc_info=exc)


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


class IngestServer(LiveState, GroupCommit, Watchers):
    """One ingest process: its store, its live state and its websocket server."""

    def __init__(self, store: Store, idle_timeout_s: float = IDLE_TIMEOUT_S, rate_per_s: float = RATE_PER_S,
                 redis_url: str | None = None):
        GroupCommit.__init__(self, store)
        LiveState.__init__(self, redis_url)
        self.idle_timeout_s = idle_timeout_s
        self.rate_per_s = rate_per_s
        self.last_seen: dict[ServerConnection, float] = {}
        self.suggesting: dict[ServerConnection, bool] = {}  # a recommendations request in flight

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer /healthz and /metrics (Prometheus); refuse the upgrade (401) without a valid
        device token."""
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        if path == "/metrics":
            response = connection.respond(http.HTTPStatus.OK, self.metrics.render().decode())
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = CONTENT_TYPE
            return response
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "missing device token (Authorization: Bearer ...)\n")
        identity = await self.db(self.store.authenticate, token.strip())
        if identity is None:
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "invalid or revoked device token\n")
        connection.identity = identity
        # As stored now: another process may have taken a change of them since.
        self.prefs[identity.user_id] = identity.cue_prefs
        return None

    async def handler(self, ws: ServerConnection) -> None:
        """Run one device connection until it closes."""
        me: Identity = ws.identity
        bucket = TokenBucket(rate=self.rate_per_s, burst=max(self.rate_per_s * 2, 1))
        strikes = 0
        self.last_seen[ws] = time.monotonic()
        self.holding[ws] = set()
        self.metrics.connections.inc()
        log.info("connected", extra={"user": me.username, "remote": str(ws.remote_address)})
        await ws.send(protocol.dumps(protocol.welcome_message(me.username)))
        try:
            while True:
                raw = await ws.recv()
                now = time.monotonic()
                self.last_seen[ws] = now
                if not bucket.take(now):
                    strikes += 1
                    self.metrics.rate_limited.inc()
                    if strikes >= FLOOD_STRIKES:
                        self.metrics.rate_limit_closes.inc()
                        await ws.close(CLOSE_FLOOD, "message flood")
                        return
                    await self.send_error(ws, ProtocolError("rate_limited", protocol.ERROR_CODES["rate_limited"]))
                    continue
                strikes = 0
                await self.dispatch(ws, me, raw)
        except ConnectionClosed:
            pass
        finally:
            self.metrics.connections.dec()
            self.last_seen.pop(ws, None)
            self.holding.pop(ws, None)
            self.forget_connection(ws)
            log.info("disconnected", extra={"user": me.username})

    async def dispatch(self, ws: ServerConnection, me: Identity, raw) -> None:
        """Parse one message and answer it; errors become error messages, never crashes."""
        try:
            msg = protocol.parse(raw)
        except ProtocolError as exc:
            self.metrics.messages.labels("invalid").inc()
            await self.send_error(ws, exc)
            return
        self.metrics.messages.labels(KINDS.get(type(msg), "other")).inc()
        try:
            if type(msg) is Points:  # the hot path: no coroutine of its own unless the activity is new here
                info = self.activities.get(msg.activity_id)
                held = self.holding.get(ws)
                if info is None or info.user_id != me.user_id or (held is not None and info.id not in held):
                    info = await self.activity_on(ws, me, msg.activity_id)
                self.enqueue(ws, info, msg)
                self.touched[info.id] = self.last_seen.get(ws, 0.0)
                return
            # Keep each connection's order: its earlier points are committed and
            # acknowledged before a later command runs.
            await self.settled(ws)
            handler = {Status: self.on_status, Create: self.on_create, Feed: self.on_feed,
                       Cues: self.on_cues, Recommendations: self.on_recommendations}[type(msg)]
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

    async def on_create(self, ws, me: Identity, msg: Create) -> None:
        info = await self.db(self.store.create, me.user_id, msg.sport, msg.title, msg.visibility, msg.client_ref)
        self.created(info)
        if ws in self.holding:
            self.holding[ws].add(info.id)
        log.info("created", extra={"user": me.username, "activity_id": info.id})
        await ws.send(protocol.dumps({"type": "created", "id": msg.id, "activity_id": info.id,
                                      "status": info.status, "client_ref": msg.client_ref}))

    async def on_status(self, ws, me: Identity, msg: Status) -> None:
        before = (await self.activity_on(ws, me, msg.activity_id)).status
        self.touched[msg.activity_id] = time.monotonic()
        # The event's time, as stored: live stats pause by it, not by when the message came
        # (an offline device syncs its commands before its points).
        at = msg.at if msg.at is not None else time.time()
        info = await self.db(self.store.change_status, msg.activity_id, me.user_id, msg.command, at)
        self.status_changed(info, at)
        log.info("status", extra={"user": me.username, "activity_id": info.id, "status": info.status})
        if info.status == "completed" and before != "completed":
            # Before the answer, so that a device waiting for it has heard them.
            for cue in await self.badge_cues(me, info.id):
                await ws.send(protocol.dumps({"type": "cue", "activity_id": info.id, **cue}))
        await ws.send(protocol.dumps({"type": "status", "id": msg.id, "activity_id": info.id,
                                      "status": info.status}))

    async def badge_cues(self, me: Identity, activity_id: int) -> list[dict]:
        """The badge cues for a completed activity; none (and a log line) if working them out
        fails: the completion itself stands."""
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self.store.slow_executor, self.store.badge_cues, me.user_id, activity_id)
        except Exception:  # noqa: BLE001 - a cue is a courtesy; the status answer must go out
            log.exception("badge cues failed", extra={"user": me.username, "activity_id": activity_id})
            return []

    async def on_recommendations(self, ws, me: Identity, msg: Recommendations) -> None:
        if self.suggesting.get(ws):
            raise ActivityError("one recommendations request at a time: wait for its answer", "rate_limited")
        self.suggesting[ws] = True
        try:
            items = await asyncio.get_running_loop().run_in_executor(
                self.store.slow_executor, self.store.recommendations, me.user_id, msg.kind, msg.limit)
        finally:
            self.suggesting.pop(ws, None)
        await ws.send(protocol.dumps({"type": "recommendations", "id": msg.id, "kind": msg.kind, "items": items}))

    async def on_feed(self, ws, me: Identity, msg: Feed) -> None:
        # Slow: an activity whose athlete hides part of it is cut and summarised again.
        page = await self.db(self.store.feed, me.user_id, msg.cursor, msg.limit, slow=True)
        await ws.send(protocol.dumps({"type": "feed", "id": msg.id, **page}))

    async def on_cues(self, ws, me: Identity, msg: Cues) -> None:
        prefs = CuePrefs(fields=msg.fields, every_km=msg.every_km, every_min=msg.every_min)
        await self.db(self.store.save_cues, me.user_id, prefs)
        self.prefs[me.user_id] = prefs
        await ws.send(protocol.dumps({"type": "cues", "id": msg.id, **prefs.to_settings()}))

    async def acknowledge(self, pending: PendingBatch, stored) -> None:
        """Answer one committed batch: the ack with live stats, then any cue now due."""
        ws, msg = pending.ws, pending.msg
        if isinstance(stored, Exception):
            code = stored.code if isinstance(stored, ActivityError) else "internal"
            text = str(stored) if isinstance(stored, ActivityError) else protocol.ERROR_CODES["internal"]
            await ws.send(protocol.dumps(protocol.error_message(code, text, msg.id)))
            return
        activity_id = pending.activity_id
        stats, cues, warning = self.add_points(activity_id, msg.points, stored)
        await ws.send(protocol.dumps_utf8({
            "type": "ack", "id": msg.id, "activity_id": activity_id, "stored": len(stored),
            "duplicates": len(msg.points) - len(stored), "stats": stats}), text=True)
        for text in cues:
            await ws.send(protocol.dumps({"type": "cue", "activity_id": activity_id, "text": text}))
        if warning is not None:
            log.info("suggest_pause", extra={"activity_id": activity_id, "speed_kmh": warning["speed_kmh"]})
            await ws.send(protocol.dumps({"type": "suggest_pause", "activity_id": activity_id, **warning}))

    async def run(self, host: str, port: int, stop: asyncio.Future, ready: asyncio.Future | None = None) -> None:
        """Serve until ``stop`` resolves, then drain pending commits and close with 1001."""
        tasks = [asyncio.create_task(self.committer()), asyncio.create_task(self.idle_sweeper())]
        # PostgreSQL checkpoints by itself; only SQLite's WAL is left to this process.
        if self.store.dialect == "sqlite":
            tasks.append(asyncio.create_task(self.checkpointer()))
        publisher = asyncio.create_task(self.live_publisher()) if self.redis_url else None
        if publisher is not None:
            publisher.add_done_callback(publisher_ended)
        async with serve(self.handler, host, port, process_request=self.process_request,
                         max_size=protocol.MAX_MESSAGE_BYTES, compression=None,
                         ping_interval=20, ping_timeout=20, close_timeout=5) as server:
            tasks.append(asyncio.create_task(self.token_watch(server)))
            port = server.sockets[0].getsockname()[1]
            log.info(f"listening on {host}:{port}")
            if ready is not None and not ready.done():
                ready.set_result(port)
            await stop
            await self.shut_down(server)
        for task in tasks:
            task.cancel()
        if publisher is not None:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # a failure was logged when it came
                await publisher
        log.info(f"stopped after {self.commits} commits holding {self.batches_committed} batches")

    async def shut_down(self, server: Server) -> None:
        """Take no new connections, commit and acknowledge what was received (waiting at most
        ``DRAIN_TIMEOUT_S`` for a locked database), then close every connection with 1001."""
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
