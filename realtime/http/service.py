"""What the HTTP service keeps between requests: device tokens it has seen, each token's rate
limit, the two group commits and the live state.

``HttpIngest`` is built from the websocket server's parts, so both services share one ingest
path: ``GroupCommit`` (realtime/commit.py) writes the REST API's GPS logs of many requests in
shared transactions, and ``LiveState`` (realtime/live_state.py) keeps live stats, cues and the
vehicle watch and publishes them to Redis for the Live page. A request waits for its batch's
commit: nothing is answered ``200`` before it is durable.

Phone apps' fixes (the OsmAnd and OwnTracks endpoints) belong to no activity until
``core.devices.fixes.store_fixes`` assigns them one; they have a group commit of their own
(``FixCommit``, realtime/http/fix_commit.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict

from core.activities.lifecycle import OPEN_STATUSES
from core.config import load_settings
from core.devices.fixes import Fix, Stored
from realtime.commit import MAX_UNSETTLED_PER_CONNECTION, GroupCommit, PendingBatch
from realtime.http.fix_commit import FixCommit, FixJob
from realtime.live_state import LiveState
from realtime.protocol import Point
from realtime.server import RATE_BURST, RATE_PER_S, TokenBucket
from realtime.store import Identity, Store
from realtime.watchers import Watchers

log = logging.getLogger("realtime")

TOKEN_CACHE_S = 60.0  # how long a device token, once checked, is taken without asking the database
UNKNOWN_CACHE_S = 10.0  # how long an unknown token is answered 401 without asking again
TOKEN_CACHE_MAX = 20_000  # tokens remembered at most (known and unknown); the cache starts afresh beyond
TOKEN_CHECK_EVERY_S = 2.0  # how soon a revoked token stops being taken
MAX_QUEUED_FIXES = 50_000  # fixes waiting for the fix commit; beyond, requests are answered 429
MAX_QUEUED_PER_TOKEN = 5_000  # of which one device token's
# A device that starts more activities than this in ``STARTS_WINDOW_S`` (a replay of fixes
# spaced beyond the idle time, each starting an activity) is answered 429 for the rest of it.
MAX_STARTS = 30
STARTS_WINDOW_S = 600.0
MAX_SPANS = 64  # fix time spans remembered per token
FAILURE_RATE_PER_S = 5.0  # unknown-token requests one client address may make, in bursts of 4x
EVICT_EVERY_S = 60.0


class Unauthorized(Exception):
    """No valid device token; the answer never says whether the id exists."""


class RateLimited(Exception):
    """The token sent more than its share; resend after ``retry_after`` seconds."""

    def __init__(self, retry_after: float, message: str = "too many requests for this device token; "
                                                          "slow down and resend"):
        super().__init__(message)
        self.retry_after = retry_after


class Reply:
    """Where a REST request waits for its GPS log's commit: stands in for the websocket
    connection of ``realtime.commit.PendingBatch``."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future = asyncio.get_running_loop().create_future()


class HttpIngest(LiveState, GroupCommit, FixCommit):
    """One HTTP ingest process: its store, token cache, rate limits, commits and live state."""

    def __init__(self, store: Store, redis_url: str | None = None, rate_per_s: float = RATE_PER_S):
        GroupCommit.__init__(self, store)
        LiveState.__init__(self, redis_url)
        self.rate_per_s = rate_per_s
        self.burst = max(rate_per_s * RATE_BURST / RATE_PER_S, 1.0)
        # token -> (identity or None for an unknown one, when it was looked up)
        self.tokens: dict[str, tuple[Identity | None, float]] = {}
        self.buckets: dict[int, TokenBucket] = {}
        self.failures: dict[str, TokenBucket] = {}  # client address -> its unknown-token requests
        self.suggesting: set[int] = set()  # tokens with a recommendations request in flight
        self.logs_waiting: dict[int, int] = defaultdict(int)  # token -> REST GPS logs not yet committed
        self.fixes_waiting: dict[int, int] = defaultdict(int)  # token -> fixes not yet committed
        # token -> when it (may have) started activities, and the fix time spans seen of it
        self.starts: dict[int, list[float]] = defaultdict(list)
        self.spans: dict[int, list[list[float]]] = {}
        self.idle_s = load_settings().device_idle_complete_s
        FixCommit.__init__(self, store)
        self.loading: set[int] = set()  # activities whose live state is being rebuilt
        self.tasks: list[asyncio.Task] = []

    # -- lifetime ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the commits and the rounds (on the running event loop)."""
        self.tasks = [asyncio.create_task(self.committer()), asyncio.create_task(self.fix_committer()),
                      asyncio.create_task(self.token_watch()), asyncio.create_task(self.evictor())]
        if self.store.dialect == "sqlite":
            # SQLite's WAL checkpointed off the commit path, as the websocket server does.
            self.tasks.append(asyncio.create_task(Watchers.checkpointer(self)))
        if self.redis_url:
            self.tasks.append(asyncio.create_task(self.live_publisher()))

    async def stop(self) -> None:
        """Commit and answer what was received, then stop the rounds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain_all(), 30)
        tasks = [*self.tasks, *self.restore_tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.answer_unstored_fixes()

    async def _drain_all(self) -> None:
        await self.drain()
        while self.fixes_unstored():
            await asyncio.sleep(0.01)

    # -- who is asking -------------------------------------------------------------------

    async def identify(self, token: str | None, client: str = "") -> Identity:
        """The identity of a device token (cached for ``TOKEN_CACHE_S``); Unauthorized when
        it is missing, unknown or revoked, with the same answer in every case. A client
        address sending unknown tokens faster than ``FAILURE_RATE_PER_S`` gets RateLimited
        without a database lookup, so a flood of made-up tokens cannot slow everyone."""
        now = time.monotonic()
        if not token or len(token) > 200:
            self._failed(client, now)
            raise Unauthorized()
        cached = self.tokens.get(token)
        if cached is not None:
            identity, at = cached
            if now - at < (TOKEN_CACHE_S if identity is not None else UNKNOWN_CACHE_S):
                if identity is None:
                    self._failed(client, now)
                    raise Unauthorized()
                return identity
        bucket = self.failures.get(client)
        if bucket is not None and bucket.tokens < 1 and not bucket.take(now):
            raise RateLimited(1.0, "too many requests with unknown device tokens from this address; slow down")
        identity = await self.db(self.store.authenticate, token)
        if len(self.tokens) >= TOKEN_CACHE_MAX:
            # Unknown tokens go first; the known ones only if the cache is still full.
            self.tokens = {t: v for t, v in self.tokens.items() if v[0] is not None}
            if len(self.tokens) >= TOKEN_CACHE_MAX:
                self.tokens.clear()
        self.tokens[token] = (identity, now)
        if identity is None:
            self._failed(client, now)
            raise Unauthorized()
        self.prefs.setdefault(identity.user_id, identity.cue_prefs)
        return identity

    def _failed(self, client: str, now: float) -> None:
        """Count a request with no valid token against its client address."""
        bucket = self.failures.get(client)
        if bucket is None:
            if len(self.failures) >= TOKEN_CACHE_MAX:
                self.failures.clear()
            bucket = self.failures[client] = TokenBucket(rate=FAILURE_RATE_PER_S, burst=4 * FAILURE_RATE_PER_S,
                                                         tokens=4 * FAILURE_RATE_PER_S, stamp=now)
        bucket.take(now)

    def take(self, identity: Identity) -> None:
        """Count a request against its token's rate limit, as the websocket server counts
        messages: ``rate_per_s`` a second in bursts of twice that; RateLimited beyond."""
        bucket = self.buckets.get(identity.token_id)
        if bucket is None:
            bucket = self.buckets[identity.token_id] = TokenBucket(rate=self.rate_per_s, burst=self.burst,
                                                                    tokens=self.burst)
        if not bucket.take(time.monotonic()):
            raise RateLimited(max(1.0, (1 - bucket.tokens) / bucket.rate))

    async def token_watch(self) -> None:
        """Forget tokens revoked (or deleted with their athlete) since they were checked."""
        while True:
            await asyncio.sleep(TOKEN_CHECK_EVERY_S)
            known = {identity.token_id for identity, _ in list(self.tokens.values()) if identity is not None}
            if not known:
                continue
            try:
                revoked = await self.db(self.store.revoked_tokens, sorted(known))
            except Exception:  # noqa: BLE001 - checked again next round
                log.warning("could not check device tokens", exc_info=True)
                continue
            if revoked:
                for token, (identity, _) in list(self.tokens.items()):
                    if identity is not None and identity.token_id in revoked:
                        del self.tokens[token]
                        self.buckets.pop(identity.token_id, None)

    # -- the REST API's GPS logs ---------------------------------------------------------

    async def acknowledge(self, pending: PendingBatch, stored) -> None:
        """Hand one committed batch's result to the request waiting for it."""
        reply: Reply = pending.ws
        if reply.future.done():
            return
        if isinstance(stored, Exception):
            reply.future.set_exception(stored)
            return
        stats, cues, warning = self.add_points(pending.activity_id, pending.msg.points, stored)
        reply.future.set_result({"activity_id": pending.activity_id, "stored": len(stored),
                                 "duplicates": len(pending.msg.points) - len(stored), "stats": stats,
                                 "cues": cues, "suggest_pause": warning})

    async def log_points(self, identity: Identity, msg) -> dict:
        """Store a REST GPS log through the group commit; answers once it is durable."""
        info = await self.activity_for(identity, msg.activity_id)
        token = identity.token_id
        if self.logs_waiting[token] >= MAX_UNSETTLED_PER_CONNECTION:  # as for one websocket connection
            raise RateLimited(1.0, f"{self.logs_waiting[token]} GPS logs of this device token are waiting "
                                   "for the database: wait for their answers")
        reply = Reply()
        self.logs_waiting[token] += 1
        try:
            self.enqueue(reply, info, msg)
            self.touched[info.id] = time.monotonic()
            return await reply.future
        finally:
            self.forget_connection(reply)
            self.logs_waiting[token] -= 1
            if not self.logs_waiting[token]:
                del self.logs_waiting[token]

    # -- phone apps' fixes ---------------------------------------------------------------

    async def save_fixes(self, identity: Identity, fixes: list[Fix]) -> list[Stored]:
        """Queue fixes for the fix commit; returns once they are durable, one result each."""
        token = identity.token_id
        spans, new = self.new_spans(token, fixes)
        if new:
            now = time.monotonic()
            starts = self.starts[token]
            starts[:] = [t for t in starts if now - t < STARTS_WINDOW_S]
            if len(starts) + new > MAX_STARTS:
                raise RateLimited(STARTS_WINDOW_S - (now - starts[0]) if starts else STARTS_WINDOW_S,
                                  f"this device's fixes would start more than {MAX_STARTS} activities in "
                                  f"{STARTS_WINDOW_S / 60:.0f} minutes; they are refused for a while")
            starts.extend([now] * new)
        self.spans[token] = spans
        if len(self.fix_queue) + len(fixes) > MAX_QUEUED_FIXES:
            raise RateLimited(1.0, "the service is busy; resend later")
        if self.fixes_waiting[token] + len(fixes) > MAX_QUEUED_PER_TOKEN:
            raise RateLimited(1.0, "this device token's fixes are waiting for the database: wait for their answers")
        loop = asyncio.get_running_loop()
        jobs = [FixJob(identity, fix, loop.create_future()) for fix in fixes]
        self.fixes_waiting[token] += len(jobs)
        self.fix_queue.extend(jobs)
        self.fix_queued.set()
        try:
            if len(jobs) == 1:  # a phone's usual request: one fix
                return [await jobs[0].future]
            return list(await asyncio.gather(*(job.future for job in jobs)))
        finally:
            self.fixes_waiting[token] -= len(jobs)
            if not self.fixes_waiting[token]:
                del self.fixes_waiting[token]

    def new_spans(self, token: int, fixes: list[Fix]) -> tuple[list[list[float]], int]:
        """The token's fix time spans with ``fixes`` added, and how many of them lie beyond
        the idle time of every fix this process has taken of the token: each may start an
        activity (counted before the database says, so that a device cannot make one
        transaction start hundreds). Kept only once the fixes are taken."""
        known = self.spans.get(token)
        if known is not None and len(fixes) == 1:  # a phone's usual request: one fix, inside a span
            t = fixes[0].t
            for span in known:
                if span[0] - self.idle_s <= t <= span[1] + self.idle_s:
                    span[0], span[1] = min(span[0], t), max(span[1], t)  # in place: it starts nothing
                    return known, 0
        if known is None and len(self.spans) >= TOKEN_CACHE_MAX:
            self.spans.clear()
        spans = [list(span) for span in known or ()]
        new = 0
        for t in sorted(fix.t for fix in fixes):
            for span in spans:
                if span[0] - self.idle_s <= t <= span[1] + self.idle_s:
                    span[0], span[1] = min(span[0], t), max(span[1], t)
                    break
            else:
                spans.append([t, t])
                new += 1
        if len(spans) > MAX_SPANS:
            del spans[:-MAX_SPANS]
        return spans, new

    def follow_fixes(self, batch: list[FixJob], results: list[Stored]) -> None:
        """Feed newly stored fixes of open activities to their live stats, for the Live page
        through Redis; an activity this process has not seen yet is rebuilt from storage (which
        holds these fixes already). Without Redis nothing reads them (a phone app hears no
        acknowledgement, cue or suggestion, and the Live page rebuilds a phone's activity from
        its stored points as it does any other), so they are not kept."""
        if not self.redis_url:
            return
        by_activity: dict[int, list[tuple[FixJob, Stored]]] = defaultdict(list)
        for job, result in zip(batch, results):
            if result.new:
                by_activity[result.activity_id].append((job, result))
        now = time.monotonic()
        for activity_id, items in by_activity.items():
            result = items[-1][1]
            if result.status not in OPEN_STATUSES:
                if activity_id in self.activities:
                    self.forget(activity_id)
                    if self.redis_url:
                        self.live_ended.append(activity_id)
                continue
            self.touched[activity_id] = now
            if activity_id not in self.activities:
                if activity_id not in self.loading:
                    self.loading.add(activity_id)
                    asyncio.create_task(self._load(items[0][0].identity, activity_id))
                continue
            points = [Point(r.seq, j.fix.t, j.fix.lat, j.fix.lon, j.fix.ele) for j, r in items]
            self.add_points(activity_id, points, {p.seq for p in points})

    async def _load(self, identity: Identity, activity_id: int) -> None:
        try:
            await self.activity_for(identity, activity_id)
            if self.redis_url:
                self.live_dirty.add(activity_id)
        except Exception:  # noqa: BLE001 - live stats only; the fixes are stored
            log.warning("could not load live state", exc_info=True)
            self.touched.pop(activity_id, None)
        finally:
            self.loading.discard(activity_id)

    # -- rounds --------------------------------------------------------------------------

    async def evictor(self) -> None:
        while True:
            await asyncio.sleep(EVICT_EVERY_S)
            self.evict_idle_activities(time.monotonic())
