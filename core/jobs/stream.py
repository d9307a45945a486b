"""Anomaly scoring shared by several workers through a Redis Stream and its consumer group.

With Redis configured, the worker holding the ``activities`` group (``core.jobs.locks``)
relays each completed activity that has no verdict yet into the stream ``tracker:scoring``
(``relay``), and every worker reads it as one consumer of the group ``scorers`` (``score``):
Redis hands each entry to one of them. The database stays the record of what is to score:

- **at least once**: an entry is acknowledged only after its verdict is written (or found
  written); a scorer that dies leaves its entries pending, and another claims those idle
  for ``RECLAIM_IDLE_MS`` (``XAUTOCLAIM``). An activity still without a verdict
  ``RELAY_AGAIN_S`` after it was relayed (its entry lost with a Redis restarted without
  persistence) is relayed again. An activity whose scoring fails for a reason of its own
  is acknowledged and written down (``core.anomaly.failures``), and relayed again when it is
  due; one failing for the service's (the database, Redis) stays pending. An activity is
  handled once per batch however many of its entries came;
- **written once**: the verdict is written under the activity's lock only if it has none
  (``core.anomaly.scoring``), so an entry delivered twice, or relayed twice, writes nothing
  the second time. An athlete's crop is written down as pending
  (``core.anomaly.tables.PendingCrop``) and published by the dashboard: its verdict is
  written the same way, if no other crop came since the scorer read the track (that one's
  entry scores both).

Late fixes (``core.jobs.devices``) are shared the same way: the holder relays each completed
activity a late fix landed in into ``tracker:recompute`` (``relay_late``), and the same
consumers recompute it and score it again where its verdict allows (``recompute``); one that
more fixes land in while it is recomputed goes back into the stream.

Without Redis, the worker scores in its round as before (``core.anomaly.scoring.
score_pending``), and so does the ``activities`` group's holder if Redis is unreachable.

The stream is used through ``ActivityStream``'s five methods. Reading from Kafka instead is
a class with the same methods: ``publish`` produces to a topic keyed by activity id,
``take`` polls a consumer in the group ``scorers`` (auto-commit off), ``ack`` commits the
offsets of the handled records, ``reclaim`` is empty (Kafka reassigns a dead consumer's
partitions to the others, which read again from its last committed offset), and ``lag`` is
the group's lag summed over partitions.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Protocol

from core.anomaly import failures
from core.anomaly.scoring import pending_ids, score_one
from core.config import MAX_ID
from core.jobs.devices import late_ids, recompute_one, record_failure

log = logging.getLogger(__name__)

STREAM = "tracker:scoring"
GROUP = "scorers"
RELAYED = "tracker:scoring:relayed:"  # + activity id: relayed recently, not again before it expires
LATE_STREAM = "tracker:recompute"  # completed activities a late fix landed in
RELAYED_LATE = "tracker:recompute:relayed:"
RELAY_AGAIN_S = 600
RELAY_BATCH = 1000
RECLAIM_IDLE_MS = 60_000
TAKE = 50  # entries a scorer takes at a time
MAX_LENGTH = 100_000  # the stream is trimmed to about this many entries


class ActivityStream(Protocol):
    def publish(self, activity_ids: list[int]) -> int: ...
    def take(self, count: int) -> list[tuple[str, int]]: ...
    def reclaim(self, idle_ms: int, count: int) -> list[tuple[str, int]]: ...
    def ack(self, entry_ids: list[str]) -> None: ...
    def lag(self) -> int: ...


def activity_of(fields) -> tuple[int | None, str]:
    """An entry's activity id and, when it has none that can be ours, why: the field
    ``activity`` in ASCII digits, from 1 to ``MAX_ID`` (what ``publish`` writes)."""
    raw = (fields or {}).get("activity")
    if raw is None:
        return None, "it has no activity field"
    raw = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
    shown = raw if len(raw) <= 40 else raw[:40] + "..."
    if not (raw.isascii() and raw.isdigit()):
        return None, f"its activity {shown!r} is not a whole number in ASCII digits"
    digits = raw.lstrip("0")
    if not digits or len(digits) > len(str(MAX_ID)) or int(digits) > MAX_ID:
        return None, f"its activity {shown} is outside 1 to {MAX_ID}"
    return int(digits), ""


def consumer_name() -> str:
    """This process's name in the group: host and process id."""
    return f"{socket.gethostname()}-{os.getpid()}"


class RedisActivityStream:
    """``ActivityStream`` on a Redis Stream and its consumer group (made if missing)."""

    def __init__(self, redis, consumer: str | None = None, stream: str = STREAM, group: str = GROUP):
        self.redis, self.stream, self.group = redis, stream, group
        self.consumer = consumer or consumer_name()
        self._group_made = False

    def _ensure_group(self) -> None:
        if self._group_made:
            return
        try:
            self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except Exception as exc:  # noqa: BLE001 - redis.ResponseError; the group exists already
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_made = True

    def _grouped(self, call):
        """``call()`` with the group made first, and made again once if Redis lost it (a
        restart without its data, a flush): the relay's next entries recreate the stream
        without the group, and reading would fail until this process ended. Before they do,
        the stream itself is gone ("no such key" to XINFO): made again, empty, with the group."""
        self._ensure_group()
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - redis.ResponseError NOGROUP; anything else is raised
            if "NOGROUP" not in str(exc) and "no such key" not in str(exc).lower():
                raise
        self._group_made = False
        self._ensure_group()
        return call()

    def publish(self, activity_ids: list[int]) -> int:
        self._ensure_group()
        pipe = self.redis.pipeline(transaction=False)
        for activity_id in activity_ids:
            pipe.xadd(self.stream, {"activity": str(int(activity_id))}, maxlen=MAX_LENGTH, approximate=True)
        pipe.execute()
        return len(activity_ids)

    def _entries(self, found) -> list[tuple[str, int]]:
        """The entries' activity ids; one that names no activity of ours (written by someone
        else) gets -1, so it is acknowledged and left (it would otherwise block the group),
        with a warning saying why."""
        out = []
        for entry_id, fields in found or []:
            activity_id, why = activity_of(fields)
            if activity_id is None:
                log.warning("entry %s of %s refused and acknowledged: %s", entry_id, self.stream, why)
                activity_id = -1
            out.append((entry_id, activity_id))
        return out

    def take(self, count: int) -> list[tuple[str, int]]:
        answer = self._grouped(lambda: self.redis.xreadgroup(self.group, self.consumer, {self.stream: ">"},
                                                             count=count))
        return [e for _, entries in answer or [] for e in self._entries(entries)]

    def reclaim(self, idle_ms: int, count: int) -> list[tuple[str, int]]:
        answer = self._grouped(lambda: self.redis.xautoclaim(self.stream, self.group, self.consumer,
                                                             min_idle_time=idle_ms, start_id="0-0", count=count))
        return self._entries(answer[1] if answer else [])

    def ack(self, entry_ids: list[str]) -> None:
        if entry_ids:
            self.redis.xack(self.stream, self.group, *entry_ids)

    def lag(self) -> int:
        """Entries not yet read by the group plus those read and not acknowledged."""
        for info in self._grouped(lambda: self.redis.xinfo_groups(self.stream)):
            if info.get("name") == self.group:
                return self._unread(info) + int(info.get("pending") or 0)
        return 0

    def _unread(self, group: dict) -> int:
        """The group's entries not yet read. Redis gives no figure once entries it had not
        delivered were deleted (by hand: this code never deletes entries, whose deletion
        leaves Redis's own count off for good): then the entries added less those read,
        which counts the deleted ones too, erring high."""
        if group.get("lag") is not None:
            return int(group["lag"])
        info = self.redis.xinfo_stream(self.stream)
        added, read = info.get("entries-added"), group.get("entries-read")
        if added is None or read is None:
            return int(info.get("length") or 0)
        return max(0, int(added) - int(read))


def relay(Session, stream: RedisActivityStream, batch: int = RELAY_BATCH) -> int:
    """Put the completed activities without a verdict into the stream, oldest completion
    first, each at most once per ``RELAY_AGAIN_S`` (and, after its scoring failed, not
    before it is due again: ``core.anomaly.failures``); returns how many went in."""
    return _relay(stream, pending_ids(Session, batch), RELAYED)


def relay_late(Session, stream: RedisActivityStream, batch: int = RELAY_BATCH) -> int:
    """Put the completed activities a late fix landed in (``core.jobs.devices``) into the
    stream of recomputations, each at most once per ``RELAY_AGAIN_S``; returns how many."""
    return _relay(stream, late_ids(Session, batch), RELAYED_LATE)


def _relay(stream: RedisActivityStream, ids: list[int], mark: str) -> int:
    if not ids:
        return 0
    pipe = stream.redis.pipeline(transaction=False)
    for activity_id in ids:
        pipe.set(f"{mark}{activity_id}", "1", nx=True, ex=RELAY_AGAIN_S)
    fresh = [activity_id for activity_id, took in zip(ids, pipe.execute()) if took]
    return stream.publish(fresh) if fresh else 0


def consume(stream: ActivityStream, handle, settle, count: int = TAKE,
            reclaim_idle_ms: int = RECLAIM_IDLE_MS, record_failure=None) -> dict:
    """Handle what this consumer claims from dead consumers, then what it takes anew, each
    activity once however many of its entries came (a relay repeated while one waited, a
    claim): ``handle(activity_id)`` returns how many rows it wrote, and its entries are
    acknowledged once it returned. The service's errors (database, Redis) leave them pending,
    to be claimed again. The activities' own go to ``settle(tried)`` (a ``failures.Round``
    writing failures down with ``record_failure``, scoring's by default, in which only an
    activity that wrote something counts as done) and are acknowledged
    too: the database holds what is still to do, and the relay puts it in again. Returns
    ``{"taken", "written", "reclaimed"}``."""
    claimed = stream.reclaim(reclaim_idle_ms, count)
    entries = claimed + stream.take(max(count - len(claimed), 1))
    by_activity: dict[int, list[str]] = {}
    for entry_id, activity_id in entries:
        by_activity.setdefault(activity_id, []).append(entry_id)
    written = 0
    tried = failures.Round(record_failure)
    for activity_id, entry_ids in by_activity.items():
        if activity_id > 0:
            try:
                written += tried.attempt(activity_id, handle)
            except Exception:  # noqa: BLE001 - the service's (the activity's own were kept): left pending
                log.warning("activity %s from %s failed", activity_id, stream.stream, exc_info=True)
                continue
        stream.ack(entry_ids)
    if tried.failed:
        settle(tried)
    return {"taken": len(entries), "written": written, "reclaimed": len(claimed)}


def score(Session, stream: ActivityStream, model, limit: float, count: int = TAKE,
          reclaim_idle_ms: int = RECLAIM_IDLE_MS) -> dict:
    """Score entries of the scoring stream (``consume``); each acknowledged once its activity
    has a verdict (or is gone, or is not completed). One whose scoring fails for a reason of
    its own is written down (``core.anomaly.failures``) and relayed again once it is due."""
    def settle(tried: failures.Round) -> None:
        written = tried.settle(Session)
        if written and isinstance(stream, RedisActivityStream):
            stream.redis.delete(*(f"{RELAYED}{a}" for a in written))  # relayed again when due, not later

    return consume(stream, lambda a: score_one(Session, a, model, limit), settle, count, reclaim_idle_ms)


def recompute(Session, stream: ActivityStream, model, limit: float, count: int = TAKE,
              reclaim_idle_ms: int = RECLAIM_IDLE_MS) -> dict:
    """Recompute, and score again where its verdict allows, each activity of the stream of
    recomputations (``core.jobs.devices.recompute_one``). One that fails for a reason of its
    own is written down (``core.jobs.devices.record_failure``) and relayed again once it is
    due; one that more fixes landed in while it was recomputed goes back into the stream,
    behind the others, and one recomputed loses its mark, so that the next late fix is
    relayed at once."""
    def handle(activity_id: int) -> int:
        done = recompute_one(Session, activity_id, model, limit)
        if done and isinstance(stream, RedisActivityStream):
            stream.redis.delete(f"{RELAYED_LATE}{activity_id}")  # a fix landing next is relayed at once
        elif not done and late_ids(Session, ids=[activity_id]):
            stream.publish([activity_id])
        return done

    def settle(tried: failures.Round) -> None:
        written = tried.settle(Session)
        if written and isinstance(stream, RedisActivityStream):
            stream.redis.delete(*(f"{RELAYED_LATE}{a}" for a in written))  # relayed again when due, not later

    return consume(stream, handle, settle, count, reclaim_idle_ms, record_failure=record_failure)


class StreamScorer:
    """A worker's part in the shared scoring: its stream, and the model it scores with
    (the holder of ``activities`` passes the one it trains; the others load the saved one
    when its file changes, and take nothing until there is one)."""

    def __init__(self, settings, Session, redis):
        self.settings, self.Session = settings, Session
        self.stream = RedisActivityStream(redis)
        self.late = RedisActivityStream(redis, consumer=self.stream.consumer, stream=LATE_STREAM)
        self.take = TAKE
        self._model, self._stamp = None, None

    def saved_model(self):
        from core.anomaly.model import ModelFileError
        from core.anomaly.registry import MODEL_FILE, load_model, model_dir

        path = model_dir(self.settings) / MODEL_FILE
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            return self._model
        if stamp != self._stamp:
            try:
                self._model, self._stamp = load_model(self.settings), stamp
            except ModelFileError as exc:
                log.warning("%s; scoring waits for the next model", exc)
        return self._model

    def round(self, limit: float, model=None, own: bool = False) -> dict:
        """Score a batch from the stream with ``model`` if ``own`` (the trainer's: None scores
        by the rules alone), else with the saved model, taking nothing while there is none."""
        if not own:
            model = self.saved_model()
            if model is None:
                return {}
        began = time.monotonic()
        done = score(self.Session, self.stream, model, limit, count=self.take)
        late = recompute(self.Session, self.late, model, limit, count=self.take)
        out = {}
        if done["taken"]:
            out["scored"] = {"activities": done["written"], "taken": done["taken"], "reclaimed": done["reclaimed"],
                             "seconds": round(time.monotonic() - began, 3)}
        if late["taken"]:
            out["recomputed_late"] = {"activities": late["written"], "taken": late["taken"],
                                      "reclaimed": late["reclaimed"]}
        return out

    def lag(self) -> int:
        return self.stream.lag() + self.late.lag()
