"""The ingest server's database side: the group commit, and store calls tried again while
the database is busy.

Batches of points from every connection wait in one queue; ``committer`` writes them in
shared transactions and has each one acknowledged only after its transaction committed.
A busy database (another writer's transaction) delays a commit, never fails it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from core.activities.ingest import require_open
from core.activities.lifecycle import ActivityError
from realtime.metrics import IngestMetrics
from realtime.protocol import Points
from realtime.store import ActivityInfo, DatabaseBusy, Store, is_busy

log = logging.getLogger("realtime")

GROUP_WAIT_S = 0.001  # how long a commit waits for more batches to join it
# A busy database delays the group commit: the batches wait, new ones join them, and the
# commit is tried again after a backoff.
BUSY_RETRY_FIRST_S = 0.002
BUSY_RETRY_MAX_S = 0.1
BUSY_WARN_AFTER_S = 5.0
MAX_UNSETTLED_PER_CONNECTION = 64  # batches one connection may have waiting for the group commit


@dataclass(slots=True)
class PendingBatch:
    ws: ServerConnection
    msg: Points
    activity_id: int
    rows: list[tuple]
    acked: bool = False
    waiters: list[asyncio.Future] | None = None  # commands held until this ack
    queued_at: float = 0.0  # time.monotonic() when queued, for the ack latency

    def settle(self) -> None:
        self.acked = True
        for waiter in self.waiters or ():
            if not waiter.done():
                waiter.set_result(None)


class BusyBackoff:
    """How long the committer waits before trying a busy database again, and when it says
    so in the log (every ``BUSY_WARN_AFTER_S`` while the database stays busy)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.since: float | None = None
        self.warned = 0.0
        self.delay = BUSY_RETRY_FIRST_S

    async def wait(self, waiting: int) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since, self.warned = now, now
        elif now - self.warned >= BUSY_WARN_AFTER_S:
            self.warned = now
            log.warning(f"database busy for {now - self.since:.1f} s: {waiting} batches waiting")
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, BUSY_RETRY_MAX_S)


class GroupCommit:
    """The group commit of an ingest server (a base of ``IngestServer``, which supplies
    ``acknowledge``): the queue of batches waiting for the database, what each connection
    has waiting, and the loop that writes them."""

    def __init__(self, store: Store):
        self.store = store
        # Batches waiting for the group commit; ``queued`` wakes the committer and
        # ``unsettled`` counts batches not yet acknowledged (the shutdown drains it).
        self.queue: list[PendingBatch] = []
        self.queued = asyncio.Event()
        self.unsettled = 0
        self.drained = asyncio.Event()
        self.commits = 0
        self.batches_committed = 0
        self.busy_retries = 0
        # How many batches each connection has waiting for the group commit.
        self.inflight: dict[ServerConnection, int] = {}
        # The newest batch each connection has waiting for the group commit.
        self.pending: dict[ServerConnection, PendingBatch] = {}
        # Per activity, batches not yet acknowledged, and how many have been (the live state
        # rebuilt from storage must not count a batch twice: realtime/live_state.py).
        self.activity_unsettled: dict[int, int] = {}
        self.activity_settled: dict[int, int] = {}
        self.metrics = IngestMetrics(queue_depth=lambda: len(self.queue), unsettled=lambda: self.unsettled)

    async def acknowledge(self, pending: PendingBatch, stored) -> None:
        """Answer one batch once its transaction has committed (``stored``: the seqs written)
        or failed (``stored``: the exception)."""
        raise NotImplementedError

    async def db(self, fn, *args, slow: bool = False, load: bool = False):
        """Run a Store method on the database thread (with ``slow``, a read that may take a
        while, on the thread of its own that keeps it from holding up point commits; with
        ``load``, on the threads that load activities); a busy database (another writer held
        its lock past the busy timeout) is tried again after a backoff, never answered as a
        fault."""
        delay = BUSY_RETRY_FIRST_S
        executor = self.store.slow_executor if slow else self.store.load_executor if load else self.store.executor
        while True:
            try:
                return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
            except Exception as exc:
                if not is_busy(exc):
                    raise
                self.busy_retries += 1
                self.metrics.busy_retries.inc()
                log.warning(f"database busy for {fn.__name__}; retrying")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    def enqueue(self, ws, info: ActivityInfo, msg: Points) -> None:
        """Queue a batch of the activity's owner for the group commit; the committer
        acknowledges it once durable. An activity known to be closed is refused at once
        (``core.activities.ingest.require_open``)."""
        require_open(info.id, info.status)
        waiting = self.inflight.get(ws, 0)
        if waiting >= MAX_UNSETTLED_PER_CONNECTION:  # a busy database must not let one connection pile up memory
            raise ActivityError(f"{waiting} batches are waiting for the database: wait for their acks",
                                "rate_limited")
        self.inflight[ws] = waiting + 1
        pending = PendingBatch(ws, msg, info.id, [p.row(info.id) for p in msg.points], queued_at=time.monotonic())
        self.pending[ws] = pending
        self.queue.append(pending)
        self.unsettled += 1
        self.activity_unsettled[info.id] = self.activity_unsettled.get(info.id, 0) + 1
        self.queued.set()

    async def settled(self, ws) -> None:
        """Return once every batch ``ws`` has queued so far is acknowledged: a command after
        points runs only then, so each connection's order is kept."""
        waiting = self.pending.get(ws)
        if waiting is not None and not waiting.acked:
            waiter = asyncio.get_running_loop().create_future()
            if waiting.waiters is None:
                waiting.waiters = []
            waiting.waiters.append(waiter)
            await waiter

    def forget_connection(self, ws) -> None:
        """Drop the counts of a closed connection (its queued batches are still committed)."""
        self.pending.pop(ws, None)
        self.inflight.pop(ws, None)

    def queued_activities(self) -> set[int]:
        """The activities with a batch waiting for the group commit."""
        return {b.activity_id for b in self.queue}

    async def committer(self) -> None:
        """Write queued batches, many connections per transaction, then acknowledge them.

        The commit runs on the event loop's own thread: while it runs, new messages wait
        in the sockets and join the next transaction, and no thread hand-off or lock
        contention is paid per batch (measured faster than a writer thread on both
        databases in bench/ingest_live.py and bench/ingest_sync.py).
        """
        busy = BusyBackoff()
        while True:
            if not self.queue:
                await self.queued.wait()
            # A millisecond lets the connections whose messages are already arriving queue
            # them too, so they join this transaction instead of paying for a commit each.
            await asyncio.sleep(GROUP_WAIT_S)
            batch, self.queue = self.queue, []
            self.queued.clear()
            began = time.perf_counter()
            try:
                results = self.store.commit_batches([(b.activity_id, b.rows) for b in batch])
            except DatabaseBusy:
                # Nothing was written: the batches go back in front of any that arrived
                # since (each connection's order is kept) and the commit is tried again.
                self.queue = batch + self.queue
                self.busy_retries += 1
                self.metrics.busy_retries.inc()
                await busy.wait(len(self.queue))
                continue
            except Exception as exc:  # noqa: BLE001 - every waiting batch must hear about it
                log.exception("commit failed")
                results = [exc] * len(batch)
            busy.reset()
            self.commits += 1
            self.batches_committed += len(batch)
            self.metrics.commit_seconds.observe(time.perf_counter() - began)
            self.metrics.commit_batches.observe(len(batch))
            await self.settle(batch, results)

    async def settle(self, batch: list[PendingBatch], results: list) -> None:
        """Acknowledge the batches of one commit, each with its result, and count them settled."""
        for pending, result in zip(batch, results):
            if not isinstance(result, Exception):
                self.metrics.points.inc(len(result))
            try:
                await self.acknowledge(pending, result)
                if pending.queued_at:
                    self.metrics.ack_seconds.observe(time.monotonic() - pending.queued_at)
            except ConnectionClosed:
                pass  # the device resends what it did not see acknowledged
            finally:
                pending.settle()
                self.unsettled -= 1
                activity_id = pending.activity_id
                self.activity_settled[activity_id] = self.activity_settled.get(activity_id, 0) + 1
                left = self.activity_unsettled.pop(activity_id, 1) - 1
                if left:
                    self.activity_unsettled[activity_id] = left
                waiting = self.inflight.get(pending.ws)
                if waiting is not None:
                    self.inflight[pending.ws] = waiting - 1
        if not self.unsettled:
            self.drained.set()

    async def drain(self) -> None:
        """Wait until every queued batch has been committed and answered."""
        while self.unsettled:
            self.drained.clear()
            await self.drained.wait()
