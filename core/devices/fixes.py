"""Phone apps' fixes: checked, assigned to the device's activity their time belongs to, and
stored through ``core.storage.points``.

A phone app (Traccar Client, OsmAnd, OwnTracks) sends a stream of fixes and no activities.
A fix goes to the device's activity whose span of fix times, widened by the idle time on
each side, holds its time (the nearest such activity when several do); otherwise it starts
a new activity for the token's user. The worker (``core.jobs.devices``) completes an
activity once its device has sent nothing new for the idle time.

A fix's sequence number is ``SEQ_BASE`` plus the deciseconds from its activity's anchor (the
first fix's time): sequence order is time order, the same fix sent twice gets the same
number and is stored once, and a late fix older than the anchor still fits. A fix that
lands in a completed activity (an app flushing its offline buffer late) is stored all the
same and the activity is marked for the worker to recompute.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.tables import DeviceToken, User
from core.activities.lifecycle import OPEN_STATUSES, change_status, create_activity
from core.activities.tables import Activity, ActivityEvent
from core.config import load_settings
from core.devices.tables import MOTION_MAX_CHARS, DeviceTrack
from core.storage.engine import write_transaction
from core.storage.points import archive, insert_new_keys
from core.storage.tiers import restore_activity

MAX_FUTURE_S = 300.0  # as the device protocol: a fix further ahead comes from a wrong clock
MIN_TIME_S = 946_684_800.0  # 2000-01-01: older fixes come from a device with no clock set
MAX_SPEED_MPS = 350.0
UNKNOWN_SPEED = -1.0  # what apps send for "no speed"
SEQ_BASE = 1_000_000_000  # route_points.seq of a fix at its activity's anchor time
SEQ_PER_S = 10  # deciseconds
SEQ_MAX = 2**31 - 1
HINT_COLUMNS = ("activity_id", "seq", "user_id", "is_moving", "motion", "speed_mps", "bearing", "battery")
PROVISIONAL_SPORT = "run"  # an activity's sport until inferred at completion
# A track's stored span and arrival time are written back when a fix extends the span by
# more than this (at most a quarter of the idle time) or this long has passed since they were
# written (or the start moves, or a recompute is due): a phone's every fix would otherwise
# rewrite its row. A stored end may therefore lag the newest fix by that much: a fix is
# matched against the stored end widened by it, completion may come that much before the
# idle time is over, and a fix after it lands in the completed activity (recomputed).
TRACK_WRITE_EVERY_S = 30.0


def write_every(idle: float) -> float:
    """How far a track's stored end may lag its newest fix, for an idle time of ``idle``."""
    return min(TRACK_WRITE_EVERY_S, idle / 4)


@dataclass(slots=True)
class Fix:
    """One fix as a phone app sent it."""

    t: float                      # Unix seconds (UTC), fractions allowed
    lat: float
    lon: float
    ele: float | None = None      # m
    acc: float | None = None      # horizontal accuracy, m
    speed_mps: float | None = None
    bearing: float | None = None  # degrees
    battery: float | None = None  # percent 0..100
    is_moving: bool | None = None  # the app's own motion hint
    motion: str | None = None     # the app's activity type (still, on_foot, in_vehicle, ...)


class FixError(ValueError):
    """An impossible fix: ``code`` is "invalid_point" (a value out of what is possible) or
    "invalid_value" (not a number, not a flag); ``message`` says why in plain words."""

    def __init__(self, message: str, code: str = "invalid_point"):
        super().__init__(message)
        self.code = code
        self.message = message


def _number(value, name: str, required: bool = False) -> float | None:
    if type(value) is float and value - value == 0.0:  # the usual case: a finite float (inf - inf is nan)
        return value
    if value is None:
        if required:
            raise FixError(f"'{name}' is required", "invalid_value")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FixError(f"'{name}' must be a number", "invalid_value")
    try:
        value = float(value)
    except OverflowError:
        raise FixError(f"'{name}' is too large", "invalid_value") from None
    if not math.isfinite(value):
        raise FixError(f"'{name}' must be finite", "invalid_value")
    return value


def check_fix(fix: Fix, now: float | None = None) -> Fix:
    """The fix with its values checked and tidied, or FixError for an impossible one.

    Refused, with the device protocol's limits: a latitude beyond ±90 or a longitude beyond
    ±180, numbers that are not finite, a time more than 300 s in the future or before
    2000-01-01, a negative accuracy, an elevation outside -1000..10000 m, a speed over 350 m/s
    or negative (but -1, which apps send for "unknown", is stored as no speed). Tidied: a
    battery level is clipped to 0..100, a bearing outside 0..360 dropped, the activity type
    cut to 24 characters (lower case, blank dropped)."""
    now = time.time() if now is None else now
    t = _number(fix.t, "t", required=True)
    if t > now + MAX_FUTURE_S:
        raise FixError("time is in the future")
    if t < MIN_TIME_S:
        raise FixError("time is before the year 2000")
    lat, lon = _number(fix.lat, "lat", required=True), _number(fix.lon, "lon", required=True)
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise FixError("latitude must be within ±90 and longitude ±180")
    ele, acc = _number(fix.ele, "ele"), _number(fix.acc, "acc")
    if ele is not None and not -1000.0 <= ele <= 10000.0:
        raise FixError("elevation must be within -1000..10000 m")
    if acc is not None and acc < 0:
        raise FixError("accuracy cannot be negative")
    speed = _number(fix.speed_mps, "speed")
    if speed == UNKNOWN_SPEED:
        speed = None
    if speed is not None and not 0.0 <= speed <= MAX_SPEED_MPS:
        raise FixError(f"speed must be within 0..{MAX_SPEED_MPS:g} m/s")
    bearing = _number(fix.bearing, "bearing")
    if bearing is not None and not 0.0 <= bearing <= 360.0:
        bearing = None
    battery = _number(fix.battery, "battery")
    if battery is not None:
        battery = min(100.0, max(0.0, battery))
    if fix.is_moving is not None and not isinstance(fix.is_moving, bool):
        raise FixError("'is_moving' must be true or false", "invalid_value")
    motion = fix.motion
    if motion is not None:
        if not isinstance(motion, str):
            raise FixError("'motion' must be text", "invalid_value")
        motion = motion.strip().lower()[:MOTION_MAX_CHARS] or None
    if (t, lat, lon, ele, acc, speed, bearing, battery, motion) == (
            fix.t, fix.lat, fix.lon, fix.ele, fix.acc, fix.speed_mps, fix.bearing, fix.battery, fix.motion):
        return fix  # nothing tidied (an int equal to its float counts as unchanged): no copy
    return replace(fix, t=t, lat=lat, lon=lon, ele=ele, acc=acc, speed_mps=speed, bearing=bearing,
                   battery=battery, motion=motion)


@dataclass(slots=True)
class Device:
    """Who sends fixes: the device token, its user, and the token's sport."""

    token_id: int
    user_id: int
    sport: str | None  # the device token's sport; None: inferred from speeds at completion


@dataclass(slots=True)
class Stored:
    """What became of one fix."""

    activity_id: int
    seq: int
    status: str     # the activity's status after the write ("active", or "completed" for a late fix)
    sport: str
    new: bool       # False: this fix was already stored (same device and time)
    created: bool   # True when this write started the activity


def device_sport(s: Session, token_id: int) -> str | None:
    """The sport a device token's activities record (run or ride), None when inferred."""
    return s.scalar(select(DeviceToken.sport).where(DeviceToken.id == token_id))


def fix_seq(t: float, anchor_t: float) -> int:
    """A fix's sequence number in the activity anchored at ``anchor_t``."""
    return SEQ_BASE + round((t - anchor_t) * SEQ_PER_S)


def has_hints(fix: Fix) -> bool:
    return (fix.is_moving is not None or fix.motion is not None or fix.speed_mps is not None
            or fix.bearing is not None or fix.battery is not None)


def idle_complete_s() -> float:
    """How long a device may send nothing new before its activity completes."""
    return load_settings().device_idle_complete_s


@dataclass(slots=True)
class _Track:
    """A device track as the write sees it: its row's values, its activity's status and sport,
    and what this write changes."""

    activity_id: int
    user_id: int  # the activity's athlete
    token_id: int
    anchor_t: float
    first_t: float
    last_t: float
    recompute: bool
    status: str
    sport: str
    first_before: float = math.inf  # first_t, last_t, heard_at and recompute as stored
    last_before: float = -math.inf
    heard_before: float = -math.inf
    recompute_before: bool = False
    touched: bool = False  # a new fix landed
    archived: bool = False  # its points are in the archive (``core.storage.tiers``)

    def stale(self, now: float, every: float) -> bool:
        """Whether the stored row must be written back (see ``TRACK_WRITE_EVERY_S``)."""
        return (self.first_t < self.first_before or self.recompute != self.recompute_before
                or self.last_t - self.last_before > every or now - self.heard_before > every)


def _nearest(tracks: list[_Track], t: float, idle: float, lag: float) -> _Track | None:
    """The track whose span, widened by the idle time (and its end by ``lag``, how far a
    stored end may be behind), holds ``t``; the nearest when several do."""
    best, best_d = None, math.inf
    for track in tracks:
        first, last = track.first_t, track.last_t
        if not first - idle <= t <= last + idle + lag:
            continue
        d = 0.0 if first <= t <= last else min(abs(t - first), abs(t - last))
        if d < best_d or (d == best_d and best is not None and track.activity_id > best.activity_id):
            best, best_d = track, d
    return best


def store_fixes(Session: sessionmaker[Session], batch: list[tuple[Device, Fix]], now: float | None = None,
                idle_s: float | None = None, max_starts: int | None = None,
                restore: bool = True, write_inside: frozenset[int] = frozenset()) -> list[Stored | None]:
    """Store many devices' fixes (each checked by ``check_fix`` first) in one short write
    transaction; one result per input, in order. ``idle_s``: the idle time (the settings'
    ``device_idle_complete_s`` by default). ``max_starts``: at most this many activities
    are started (each costs a few milliseconds of the transaction); a fix that would start
    one more is left out, its result None, for the caller to send again.

    A fix for an activity whose points are archived brings them back first, in short
    transactions of their own (``bring_back``), and the batch is written after; with
    ``restore`` False, ``ArchivedActivities`` is raised instead, nothing written, for a caller
    on an event loop to bring them back off it and call again. The archived activities in
    ``write_inside`` (archived again every time they came back) are written at once, their
    points brought back inside the transaction.

    A batch of many phones' fixes costs a fixed number of statements, not a few per phone:
    one read of their tracks, one insert of points and one of hints, one update of the
    tracks and one of the point counts (executemany). Only starting an activity, which
    happens once per outing, goes through the lifecycle's ORM code."""
    if not batch:
        return []
    now = time.time() if now is None else float(now)
    idle = idle_complete_s() if idle_s is None else float(idle_s)
    devices: dict[int, Device] = {}
    for device, _fix in batch:
        devices.setdefault(device.token_id, device)
    order = sorted(range(len(batch)), key=lambda i: (batch[i][0].token_id, batch[i][1].t))
    results: list[Stored | None] = [None] * len(batch)
    lag = write_every(idle)
    for attempt in range(RESTORE_TRIES + 1):
        try:
            with write_transaction(Session, "device_fixes") as s:
                tracks = _tracks(s, sorted(devices), min(f.t for _, f in batch) - idle - lag,
                                 max(f.t for _, f in batch) + idle)
                placed = _place(s, devices, tracks, [(i, batch[i][0].token_id, batch[i][1]) for i in order],
                                idle, lag, now, max_starts)
                archived = {i: track.activity_id for i, _f, track, _seq, _c in placed
                            if track.archived and track.status != "discarded"
                            and track.activity_id not in write_inside}
                if archived and attempt < RESTORE_TRIES:
                    raise ArchivedActivities(archived)  # rolled back: nothing of this batch is written yet
                # Archived again since (or still, after the tries): ``insert_new_keys`` brings it
                # back inside this transaction.
                _write(s, placed, tracks, now, lag, results)
            return results
        except ArchivedActivities as found:
            if not restore:
                raise
            bring_back(Session, found.activity_ids)
    return results


RESTORE_TRIES = 2  # times a batch brings archived activities back before writing into them


class ArchivedActivities(Exception):
    """Fixes for activities whose points are archived: ``bring_back`` them, then store again.
    ``placed``: the archived activity of each such fix, by its index in the batch."""

    def __init__(self, placed: dict[int, int]):
        self.placed = placed
        self.activity_ids = sorted(set(placed.values()))
        super().__init__(f"fixes for archived activities {self.activity_ids}")


def bring_back(Session: sessionmaker[Session], activity_ids: list[int]) -> None:
    """A late fix for an archived activity: its points come back to the table first, a chunk
    per short transaction, so that the fixes' own transaction stays short."""
    for activity_id in activity_ids:
        restore_activity(Session, archive(), activity_id)


def _tracks(s: Session, token_ids: list[int], t_lo: float, t_hi: float) -> dict[int, list[_Track]]:
    """The devices' tracks whose span comes within ``t_lo``..``t_hi``, by token."""
    if s.get_bind().dialect.name == "postgresql":
        # One writer per device at a time (SQLite's write lock is held already), so two
        # batches of one device never both start an activity for the same time.
        s.execute(select(DeviceToken.id).where(DeviceToken.id.in_(token_ids)).order_by(DeviceToken.id)
                  .with_for_update())
    # Share-locked like the ingest server's commit: the worker's completion re-counts the
    # points under its own lock, so no fix lands between its count and the status change.
    # In id order, as every writer that locks several activities (no two wait on each other).
    rows = s.execute(select(DeviceTrack.activity_id, DeviceTrack.user_id, DeviceTrack.token_id, DeviceTrack.anchor_t,
                            DeviceTrack.first_t, DeviceTrack.last_t, DeviceTrack.recompute,
                            DeviceTrack.heard_at, Activity.status, Activity.sport, Activity.points_tier)
                     .join(Activity, Activity.id == DeviceTrack.activity_id)
                     .where(DeviceTrack.token_id.in_(token_ids), DeviceTrack.last_t >= t_lo,
                            DeviceTrack.first_t <= t_hi)
                     .order_by(Activity.id).with_for_update(read=True, of=Activity)).all()
    out: dict[int, list[_Track]] = {}
    for aid, owner, token_id, anchor, first, last, recompute, heard, status, sport, tier in rows:
        out.setdefault(token_id, []).append(_Track(aid, owner, token_id, anchor, first, last, bool(recompute), status,
                                                   sport, first_before=first, last_before=last, heard_before=heard,
                                                   recompute_before=bool(recompute), archived=tier == "cold"))
    return out


def _place(s: Session, devices: dict[int, Device], tracks: dict[int, list[_Track]],
           fixes: list[tuple[int, int, Fix]], idle: float, lag: float, now: float,
           max_starts: int | None) -> list[tuple[int, Fix, _Track, int, bool]]:
    """Each fix's track (starting an activity where none is near, at most ``max_starts``)
    and sequence number, for (input index, token, fix) in device and time order: (input
    index, fix, track, seq, created). A fix that would start one too many is left out."""
    placed = []
    started = 0
    for i, token_id, fix in fixes:
        mine = tracks.setdefault(token_id, [])
        track = _nearest(mine, fix.t, idle, lag)
        created = False
        if track is None:
            if max_starts is not None and started >= max_starts:
                continue
            started += 1
            track = _start(s, devices[token_id], fix.t, now)
            mine.append(track)
            created = True
        placed.append((i, fix, track, fix_seq(fix.t, track.anchor_t), created))
        if track.status != "discarded":
            track.first_t = min(track.first_t, fix.t)
            track.last_t = max(track.last_t, fix.t)
    return placed


def _write(s: Session, placed: list[tuple[int, Fix, _Track, int, bool]], tracks: dict[int, list[_Track]],
           now: float, lag: float, results: list) -> None:
    """Insert the placed fixes' points and hints, and write back what changed of their tracks
    and activities, filling in ``results``."""
    rows_out, seen = [], set()
    for _i, fix, track, seq, _created in placed:
        key = (track.activity_id, seq)
        if track.status == "discarded" or key in seen or not 0 <= seq <= SEQ_MAX:
            continue
        seen.add(key)
        rows_out.append((key[0], seq, fix.t, fix.lat, fix.lon, fix.ele, fix.acc, None, None))
    new_keys = insert_new_keys(s, rows_out)
    hints, late = [], {}
    for i, fix, track, seq, created in placed:
        key = (track.activity_id, seq)
        new = key in new_keys
        if new:
            new_keys.discard(key)  # a second copy in this batch is not new
            track.touched = True
            if has_hints(fix):
                hints.append((key[0], seq, track.user_id, fix.is_moving, fix.motion, fix.speed_mps, fix.bearing, fix.battery))
            if track.status == "completed":
                track.recompute = True
                late[key[0]] = max(late.get(key[0], -math.inf), fix.t)
        results[i] = Stored(key[0], seq, track.status, track.sport, new, created)
    conn = s.connection()
    if hints:
        # Written for the driver, as the points are: no per-row work but the database's.
        mark = "%s" if conn.dialect.name == "postgresql" else "?"
        # A crop leaves a removed point's hints behind; the point sent again keeps them.
        conn.exec_driver_sql(f"INSERT INTO fix_hints ({', '.join(HINT_COLUMNS)}) "
                             f"VALUES ({', '.join([mark] * len(HINT_COLUMNS))}) "
                             "ON CONFLICT DO NOTHING", hints)  # the primary key: hints already stored
    touched = [t for mine in tracks.values() for t in mine if t.touched]
    stale = [t for t in touched if t.stale(now, lag)]
    if stale:
        table = DeviceTrack.__table__
        conn.execute(table.update().where(table.c.activity_id == bindparam("b_id"))
                     .values(first_t=bindparam("b_first"), last_t=bindparam("b_last"), heard_at=bindparam("b_heard"),
                             recompute=bindparam("b_recompute")),
                     [{"b_id": t.activity_id, "b_first": t.first_t, "b_last": t.last_t, "b_heard": now,
                       "b_recompute": t.recompute} for t in stale])
    for track in touched:
        aid, first = track.activity_id, track.first_t
        if track.status in OPEN_STATUSES and first < track.first_before:
            # A late fix before the first: the activity (and its start) begins there.
            s.execute(update(Activity).where(Activity.id == aid)
                      .values(start_time=datetime.fromtimestamp(first, tz=UTC)))
            s.execute(update(ActivityEvent).where(ActivityEvent.activity_id == aid, ActivityEvent.command == "start",
                                                  ActivityEvent.at > first).values(at=first))
    for aid, t in late.items():
        # A late fix after the stop would fall in the stopped interval (``pause_intervals``):
        # the stop and completion move to just after it, so the recompute counts it.
        s.execute(update(ActivityEvent).where(ActivityEvent.activity_id == aid,
                                              ActivityEvent.command.in_(("stop", "complete")),
                                              ActivityEvent.at <= t)
                  .values(at=t + 1.0))
    if late:
        # New fixes change the track: a recomputation that failed on it (or was given up on)
        # starts afresh (``core.jobs.devices.record_failure``).
        s.execute(update(DeviceTrack).where(DeviceTrack.activity_id.in_(list(late)), DeviceTrack.recompute_attempts > 0)
                  .values(recompute_attempts=0, recompute_retry_at=None))


def _start(s: Session, device: Device, t: float, now: float) -> _Track:
    """A new activity for the device's user, started at ``t``, and its device track."""
    user = s.get(User, device.user_id)
    sport = device.sport or PROVISIONAL_SPORT
    activity = create_activity(s, user, sport, source="device", client_ref=f"fixes:{device.token_id}:{int(t)}")
    if activity.status == "created":
        change_status(s, activity, "start", at=t)
    row = s.get(DeviceTrack, activity.id)
    if row is None:
        row = DeviceTrack(activity_id=activity.id, user_id=activity.user_id, token_id=device.token_id, anchor_t=t, first_t=t, last_t=t,
                          heard_at=now, sport_inferred=device.sport is None, recompute=False)
        s.add(row)
    s.flush()
    return _Track(activity.id, activity.user_id, device.token_id, row.anchor_t, row.first_t, row.last_t, bool(row.recompute),
                  activity.status, activity.sport, first_before=row.first_t, last_before=row.last_t,
                  heard_before=row.heard_at, recompute_before=bool(row.recompute))
