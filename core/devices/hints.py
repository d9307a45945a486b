"""The apps' own motion hints of an activity's fixes, read back in time order.

A phone says what it thinks it is doing: ``is_moving`` (its motion sensor) and an activity
type (still, on_foot, running, on_bicycle, in_vehicle, ...). These are offered to the
anomaly detector as one signal among others (``core.anomaly.detector.vehicle_hits``) and to
the sport's inference; neither trusts them alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.devices.tables import FixHint
from core.storage.points import seq_times

VEHICLE_MOTIONS = frozenset({"in_vehicle", "automotive", "driving", "in_car"})
# A fix the phone calls not moving while it goes this fast (its own speed, m/s) moves the way
# a vehicle does: smoothly, without the steps or pedal strokes the motion sensor feels.
STILL_BUT_FAST_MPS = 5.0


@dataclass
class Hints:
    """Per hinted fix, in time order: its time, the app's activity type (None if it gave
    none), and whether the phone took it for a vehicle (``in_vehicle``, or not moving while
    going faster than ``STILL_BUT_FAST_MPS``); ``known`` is False where it said neither."""

    t: np.ndarray
    motion: list[str | None]
    vehicle: np.ndarray
    known: np.ndarray

    def __len__(self) -> int:
        return int(self.t.size)

    def vehicle_share(self, t0: float, t1: float) -> tuple[float, int]:
        """Of the fixes from t0 to t1 whose phone said anything about its motion, the share
        it took for a vehicle, and how many those were."""
        inside = (self.t >= t0) & (self.t <= t1) & self.known
        n = int(inside.sum())
        return (float(self.vehicle[inside].mean()) if n else 0.0), n


def hints_from_rows(rows) -> Hints:
    """Hints from (t, is_moving, motion, speed_mps) rows in time order."""
    t = np.array([r[0] for r in rows], dtype=float)
    motion = [r[2] for r in rows]
    vehicle = np.array([(m in VEHICLE_MOTIONS)
                        or (moving is False and speed is not None and speed > STILL_BUT_FAST_MPS)
                        for _t, moving, m, speed in rows], dtype=bool)
    known = np.array([m is not None or moving is not None for _t, moving, m, _s in rows], dtype=bool)
    return Hints(t, motion, vehicle, known)


def stored_hints(s: Session, activity_id: int) -> Hints | None:
    """The activity's fixes' hints in time order, None when none of its fixes carried any.
    The fixes' times come from the one point-reading module (either tier)."""
    hints = s.execute(select(FixHint.seq, FixHint.is_moving, FixHint.motion, FixHint.speed_mps)
                      .where(FixHint.activity_id == activity_id)).all()
    if not hints:
        return None
    times = seq_times(s, activity_id)
    rows = sorted(((times[seq], moving, motion, speed) for seq, moving, motion, speed in hints if seq in times),
                  key=lambda r: r[0])
    return hints_from_rows(rows) if rows else None
