"""Phone apps' fixes: their group commit in the HTTP service.

Phone apps' fixes (the OsmAnd and OwnTracks endpoints) belong to no activity until
``core.devices.fixes.store_fixes`` assigns them one. ``FixCommit.fix_committer`` hands many
requests' fixes to that function at once, on the loop's thread as the websocket server's
commit runs, over a connection that never waits for a lock (``Store.nowait_sessions``: a
busy database puts the fixes back for a retry). Fixes for an activity whose points are
archived wait apart while a thread brings the points back (``_hold_for_restore``), with the
same phone's later fixes behind them; the other phones' fixes do not wait.

``HttpIngest`` (realtime/http/service.py) mixes it in and gives ``follow_fixes``, which feeds
the stored fixes to the live state.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass

from core.devices.fixes import RESTORE_TRIES, ArchivedActivities, Device, Fix, Stored, bring_back, store_fixes
from realtime.commit import BUSY_RETRY_FIRST_S, BUSY_RETRY_MAX_S, GROUP_WAIT_S
from realtime.store import Identity, Store, is_busy

log = logging.getLogger("realtime")

MAX_FIX_BATCH = 200  # fixes per transaction of the fix commit
MAX_STARTS_PER_WRITE = 8  # activities started in one transaction of the fix commit
STOPPED = "the service stopped before the fix was stored; send it again"


@dataclass(slots=True)
class FixJob:
    identity: Identity
    fix: Fix
    future: asyncio.Future
    held_for: int | None = None  # the archived activity it waited for (``_hold_for_restore``)
    restores: int = 0  # times that activity was brought back for it (``_restore``)


class FixCommit:
    """The fix queue, its commit, and the fixes waiting for archived activities; mixed in
    beside ``GroupCommit``, whose ``store`` and ``busy_retries`` it uses."""

    def __init__(self, store: Store):
        self.fix_queue: list[FixJob] = []
        self.fix_queued = asyncio.Event()
        self.fixes_Session = store.nowait_sessions()
        # archived activity -> the fixes waiting for its points to come back (``_restore``)
        self.restoring: dict[int, list[FixJob]] = {}
        self.restore_tasks: set[asyncio.Task] = set()
        self.fixes_stored = 0

    def follow_fixes(self, batch: list[FixJob], results: list[Stored]) -> None:
        """What happens to newly stored fixes after they are answered (``HttpIngest``'s)."""

    def fixes_unstored(self) -> bool:
        """Whether fixes wait to be stored (queued, or held for an archived activity)."""
        return bool(self.fix_queue or self.restoring)

    def answer_unstored_fixes(self) -> None:
        """At shutdown, after the rounds stopped: what the drain did not store (a restore
        cancelled before it began, a queue left after its time) is answered, so that nobody
        waits for an answer that never comes."""
        left = [job for jobs in self.restoring.values() for job in jobs] + self.fix_queue
        for job in left:
            if not job.future.done():
                job.future.set_exception(RuntimeError(STOPPED))
        self.restoring.clear()
        self.fix_queue = []

    async def fix_committer(self) -> None:
        """Write queued fixes, many requests per transaction, on the fix thread."""
        delay = BUSY_RETRY_FIRST_S
        while True:
            if not self.fix_queue:
                self.fix_queued.clear()
                await self.fix_queued.wait()
            await asyncio.sleep(GROUP_WAIT_S)
            batch, self.fix_queue = self.fix_queue[:MAX_FIX_BATCH], self.fix_queue[MAX_FIX_BATCH:]
            try:
                self._commit_fixes(batch)
            except Exception as exc:  # noqa: BLE001 - every waiting request must hear about it
                if is_busy(exc):
                    # Nothing was written: the fixes go back in front and are tried again.
                    self.fix_queue = batch + self.fix_queue
                    self.busy_retries += 1
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, BUSY_RETRY_MAX_S)
                    continue
                await self._commit_each_token(batch, exc)
            delay = BUSY_RETRY_FIRST_S

    def _commit_fixes(self, batch: list[FixJob]) -> None:
        """Store one batch in one transaction and answer its fixes. Fixes for archived
        activities wait for their points to come back (``_hold_for_restore``), and the others
        are stored at once."""
        if self.restoring:
            # A phone's fixes stay in order: those after a fix that waits for its archived
            # activity wait with it, so none of them starts a new activity it would have joined.
            waiting = {job.identity.token_id: activity_id for activity_id, jobs in self.restoring.items()
                       for job in jobs}
            for job in batch:
                if job.identity.token_id in waiting:
                    self.restoring[waiting[job.identity.token_id]].append(job)
            batch[:] = [job for job in batch if job.identity.token_id not in waiting]
            if not batch:
                return
        work = [(Device(j.identity.token_id, j.identity.user_id, j.identity.sport), j.fix) for j in batch]
        # On the loop's own thread, as the group commit: a few milliseconds for a hundred
        # fixes, and no hand-off to a thread per batch (measured: a thread cost a third of
        # the throughput in bench/http_ingest.py). The connection never waits for a lock.
        # Each activity started costs a few milliseconds: at most MAX_STARTS_PER_WRITE per
        # transaction, so that a mass start (a race's phones all at once) never stalls the loop
        # for long; the fixes left out go back in front of the queue for the next one.
        # An activity archived again every time it came back for a fix: that fix is stored
        # with the points brought back in the same transaction (``store_fixes``), so it ends.
        inside = frozenset(job.held_for for job in batch if job.restores >= RESTORE_TRIES)
        try:
            results = store_fixes(self.fixes_Session, work, max_starts=MAX_STARTS_PER_WRITE, restore=False,
                                  write_inside=inside)
        except ArchivedActivities as found:
            held: dict[int, list[FixJob]] = defaultdict(list)
            for i, activity_id in found.placed.items():
                held[activity_id].append(batch[i])
            self._hold_for_restore(held)
            # The batch keeps the others only: if they fail, the caller retries or answers them
            # alone, not the fixes that wait for their activity.
            batch[:] = [job for i, job in enumerate(batch) if i not in found.placed]
            if batch:
                self._commit_fixes(batch)
            return
        done = [(job, result) for job, result in zip(batch, results) if result is not None]
        left = [job for job, result in zip(batch, results) if result is None]
        if left:
            self.fix_queue = left + self.fix_queue
            self.fix_queued.set()
        self.fixes_stored += sum(result.new for _, result in done)
        for job, result in done:
            if not job.future.done():
                job.future.set_result(result)
        self.follow_fixes([job for job, _ in done], [result for _, result in done])

    def _hold_for_restore(self, held: dict[int, list[FixJob]]) -> None:
        """Late fixes for archived activities (a phone's offline buffer, months late): each
        activity's points come back off the loop, on a connection that waits its turn
        (``_restore``), and its fixes go back in front of the queue; the other phones' fixes
        do not wait for it."""
        for activity_id, jobs in held.items():
            for job in jobs:
                if job.held_for != activity_id:
                    job.held_for, job.restores = activity_id, 0
            waiting = self.restoring.get(activity_id)
            if waiting is not None:
                waiting.extend(jobs)
                continue
            self.restoring[activity_id] = list(jobs)
            task = asyncio.create_task(self._restore(activity_id))
            self.restore_tasks.add(task)
            task.add_done_callback(self.restore_tasks.discard)

    async def _restore(self, activity_id: int) -> None:
        error: BaseException | None = None
        try:
            await asyncio.get_running_loop().run_in_executor(self.store.load_executor, bring_back,
                                                             self.store.Session, [activity_id])
        except asyncio.CancelledError:
            error = RuntimeError(STOPPED)
            raise
        except Exception as exc:  # noqa: BLE001 - its fixes' requests hear about it
            log.error("could not bring back the points of archived activity %s", activity_id, exc_info=True)
            error = exc
        finally:
            jobs = self.restoring.pop(activity_id, [])
            if error is None:
                for job in jobs:
                    if job.held_for == activity_id:  # not a later fix of the phone that waited behind it
                        job.restores += 1
                self.fix_queue = jobs + self.fix_queue
                self.fix_queued.set()
            else:
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)

    async def _commit_each_token(self, batch: list[FixJob], exc: Exception) -> None:
        """After a failed transaction, each device token's fixes alone, so a fault one
        device's data causes fails only that device's requests."""
        tokens = {job.identity.token_id for job in batch}
        if len(tokens) == 1:
            log.error("fix commit failed", exc_info=exc)
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        for token in sorted(tokens):
            part = [job for job in batch if job.identity.token_id == token]
            while True:
                try:
                    self._commit_fixes(part)
                except Exception as again:  # noqa: BLE001 - answered below
                    if is_busy(again):
                        await asyncio.sleep(BUSY_RETRY_MAX_S)
                        continue
                    log.error("fix commit failed", exc_info=again)
                    for job in part:
                        if not job.future.done():
                            job.future.set_exception(again)
                break
