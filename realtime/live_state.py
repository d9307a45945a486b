"""What the ingest server keeps about each activity between messages, and publishes for the
dashboard.

An activity's row, its live stats, the live vehicle watch and its athlete's cue
preferences stay in memory while messages touch it; dropped after ``ACTIVITY_IDLE_S``
(or when it closes), they are rebuilt from storage when the device comes back.

Behind a load balancer a device that reconnects may reach another process, and may later
come back to this one after sending points elsewhere. So when a connection sends its first
message for an activity (``activity_on``), the numbers of points and status events stored
for it are compared with those this process has seen, and the state is rebuilt from storage
if they differ, unless batches of that activity are still on their way to the database here
(then this process holds the newest state). One load of an activity runs at a time. Storage is the one place every process agrees on: the distance,
the cue marks and a vehicle stretch under way continue where they were.

With Redis configured, activities whose stats changed are published once a second for the
dashboard's Live page, by every process into the same keys.
"""

from __future__ import annotations

import asyncio
import logging
import time

from core.activities import live_board
from core.activities.cues import CuePrefs
from core.activities.lifecycle import OPEN_STATUSES, ActivityError
from core.activities.live import LiveStats, replay_live
from core.anomaly.live import VehicleWatch, replay_watch
from realtime.protocol import Point
from realtime.store import ActivityInfo, Identity

log = logging.getLogger("realtime")

SUGGEST_PAUSE_WITHIN_S = 120.0  # a vehicle stretch older than this gets no pause suggestion
LIVE_PUBLISH_S = 1.0  # how often live state goes to Redis for the dashboard
# Per-activity state (live stats, the vehicle watch) is dropped when no message has
# touched the activity for this long; a device that comes back gets it rebuilt from storage.
ACTIVITY_IDLE_S = 900.0


class LiveState:
    """The per-activity state of an ingest server (a base of ``IngestServer``, which supplies
    ``db`` and ``queued_activities``)."""

    def __init__(self, redis_url: str | None = None):
        # Live state for the dashboard, through Redis when configured: activities whose
        # stats changed are published once a second by ``live_publisher``.
        self.redis_url = redis_url
        self.live_dirty: set[int] = set()
        self.live_ended: list[int] = []
        self.activities: dict[int, ActivityInfo] = {}
        self.live: dict[int, LiveStats] = {}
        # The live anomaly check: a sustained vehicle-speed stretch gets a pause suggestion.
        self.watch: dict[int, VehicleWatch] = {}
        self.prefs: dict[int, CuePrefs] = {}
        self.touched: dict[int, float] = {}  # activity id -> when a message last touched it
        # The activities each open connection has sent messages for (its first one rebuilds).
        self.holding: dict[object, set[int]] = {}
        self.activity_loads: dict[int, asyncio.Future] = {}  # activity id -> its load under way
        # Activity id -> (points, status events) stored, as far as this process knows: a
        # connection's first message rebuilds the state only when storage holds more.
        self.versions: dict[int, tuple[int, int]] = {}

    async def activity_on(self, ws, me: Identity, activity_id: int) -> ActivityInfo:
        """The activity for a message on ``ws``; on the connection's first message for it, its
        state is rebuilt from storage (see the module docstring)."""
        held = self.holding.get(ws)
        if held is None or activity_id in held:
            return await self.activity_for(me, activity_id)
        info = await self.activity_for(me, activity_id, refresh=True)
        held.add(activity_id)
        return info

    async def activity_for(self, me: Identity, activity_id: int, refresh: bool = False) -> ActivityInfo:
        """The activity if it is the user's own, loading it (and its live state) on first use,
        or with ``refresh`` again from storage when storage holds more than this process knows.
        One load of an activity at a time: a message that finds one under way waits for it."""
        info = self.activities.get(activity_id)
        if info is None or refresh:
            loading = self.activity_loads.get(activity_id)
            if loading is not None:
                await asyncio.shield(loading)
            else:
                self.activity_loads[activity_id] = asyncio.get_running_loop().create_future()
                try:
                    await self._load_state(me, activity_id, refresh=info is not None)
                finally:
                    self.activity_loads.pop(activity_id).set_result(None)
            info = self.activities.get(activity_id)
            if info is None:  # the load under way was another user's, refused: load as this one
                await self._load_state(me, activity_id, refresh=False)
                info = self.activities[activity_id]
        if info.user_id != me.user_id:
            raise ActivityError(f"no activity {activity_id} for this user", "not_found")
        return info

    async def _load_state(self, me: Identity, activity_id: int, refresh: bool) -> None:
        """Load the activity's state from storage, or with ``refresh`` replace the state held
        when storage has points or status events this process has not seen."""
        if refresh:
            if self.activity_unsettled.get(activity_id):
                return  # batches of it are on their way to the database here: the state is current
            known = self.versions.get(activity_id)
            if known is not None and known == await self.db(self.store.version, activity_id, load=True):
                return
        generation = self.activity_settled.get(activity_id, 0)
        stored, points, pauses, version = await self.db(self.store.activity, activity_id, me.user_id, load=True)
        # A batch of it committed here meanwhile may be both in what was read and in the
        # state held: the state held stays, as current as anything.
        if refresh and (self.activity_unsettled.get(activity_id)
                        or self.activity_settled.get(activity_id, 0) != generation):
            return
        live = replay_live(stored.sport, [p[:3] for p in points], pauses, self.prefs.get(me.user_id, CuePrefs()))
        live.due_cues()  # cues already spoken (by this process or another) are not repeated
        self.activities[activity_id] = stored
        self.live[activity_id] = live
        self.watch[activity_id] = replay_watch(stored.sport, points, pauses)
        self.versions[activity_id] = version

    def created(self, info: ActivityInfo) -> None:
        """Keep a new activity, with fresh live stats in its athlete's cue preferences."""
        self.activities[info.id] = info
        self.touched[info.id] = time.monotonic()
        self.live.setdefault(info.id, LiveStats(info.sport, self.prefs.get(info.user_id, CuePrefs())))
        self.watch.setdefault(info.id, VehicleWatch(info.sport))

    def status_changed(self, info: ActivityInfo, at: float) -> None:
        """Follow a stored status change: live stats pause or resume at the event's time, and
        a closed activity is forgotten."""
        self.activities[info.id] = info
        known = self.versions.get(info.id)
        if known is not None:
            self.versions[info.id] = (known[0], known[1] + 1)
        live = self.live.get(info.id)
        if live is not None:
            live.follow_status(info.status, at)
        if info.status != "active":  # after a pause the watch starts afresh
            self.watch[info.id] = VehicleWatch(info.sport)
        if info.status not in OPEN_STATUSES:
            self.forget(info.id)
            if self.redis_url:
                self.live_dirty.discard(info.id)
                self.live_ended.append(info.id)
        elif self.redis_url:
            self.live_dirty.add(info.id)

    def add_points(self, activity_id: int, points: list[Point], stored) -> tuple[dict | None, list[str], dict | None]:
        """Feed a committed batch's newly stored points (``stored``: their seqs) to the live
        stats and the vehicle watch: the stats now, the cues now due and any pause suggestion."""
        live = self.live.get(activity_id)
        cues: list[str] = []
        warning = None
        known = self.versions.get(activity_id)
        if known is not None:
            self.versions[activity_id] = (known[0] + len(stored), known[1])
        if live is not None:
            watch = self.watch.get(activity_id)
            if len(points) > 1:
                # The first copy of a seq is the one stored (a batch may hold two).
                first: dict[int, Point] = {}
                for p in points:
                    if p.seq in stored and p.seq not in first:
                        first[p.seq] = p
                points = sorted(first.values(), key=lambda p: p.t)
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
        return (live.snapshot() if live is not None else None), cues, warning

    def forget(self, activity_id: int) -> None:
        """Drop what this process keeps about an activity (rebuilt from storage if it returns)."""
        self.activity_settled.pop(activity_id, None)
        self.versions.pop(activity_id, None)
        self.activities.pop(activity_id, None)
        self.live.pop(activity_id, None)
        self.watch.pop(activity_id, None)
        self.touched.pop(activity_id, None)

    def evict_idle_activities(self, now: float) -> int:
        """Forget activities no message has touched for ``ACTIVITY_IDLE_S`` and that have no
        batch waiting; returns how many."""
        waiting = self.queued_activities()
        stale = [aid for aid in self.activities
                 if now - self.touched.get(aid, 0.0) > ACTIVITY_IDLE_S and aid not in waiting]
        for activity_id in stale:
            self.forget(activity_id)
            if self.redis_url:
                self.live_dirty.discard(activity_id)
        return len(stale)

    async def live_publisher(self, every_s: float = LIVE_PUBLISH_S) -> None:
        """Publish the live state of changed activities to Redis, once per ``every_s``. A URL
        Redis's client refuses is logged as an error at once, and nothing is kept for publishing
        from then on (ingest goes on: the Live page lacks this process's athletes)."""
        from redis.asyncio import Redis

        try:
            redis = Redis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=5)
        except Exception as exc:  # noqa: BLE001 - ingest goes on without the Live page
            log.error(f"live state is not published: Redis refused TRACKER_REDIS_URL: {exc}")
            self.redis_url = None  # nobody drains the sets without a publisher
            self.live_dirty.clear()
            self.live_ended.clear()
            return
        try:
            while True:
                await asyncio.sleep(every_s)
                dirty, self.live_dirty = self.live_dirty, set()
                ended, self.live_ended = self.live_ended, []
                records = []
                for activity_id in dirty:
                    info = self.activities.get(activity_id)
                    if info is not None:
                        records.append(live_board.record(info.id, info.user_id, info.sport, info.status,
                                                         self.live.get(activity_id)))
                try:
                    await live_board.publish(redis, records, ended)
                except Exception:  # noqa: BLE001 - Redis is a cache here: log, carry on ingesting
                    log.warning("could not publish live state to Redis", exc_info=True)
        finally:
            await redis.aclose()
