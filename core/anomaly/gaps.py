"""Where a track was not seen, or not where it says: recording gaps whose ends lie far apart
and jumps of hundreds of metres at impossible speed. The rules read them (``rules``); the
distance and speeds leave both out (``features``).
"""

from __future__ import annotations

import math

import numpy as np

from core.anomaly.limits import GAP_HR_AFTER_S, GAP_HR_BEFORE_S, GAP_MIN_M
from core.tracks.cleaning import MAX_SPEED_MPS
from core.tracks.geo import local_xy, segment_lengths_m
from core.tracks.stats import _crosses_pause

# A step this long and this much faster than the sport allows is a jump, not movement.
TELEPORT_MIN_M = 200.0
TELEPORT_SPEED_FACTOR = 2.0
SPIKE_FIXES = 3  # a jump whose track comes back within this many fixes is a spike


def jumps(t: np.ndarray, lat: np.ndarray, lon: np.ndarray, sport: str) -> list[dict]:
    """Steps of hundreds of metres at impossible speed after which the track stays away
    (a spoofed or shifted location); a fix that jumps out and comes straight back within a
    few fixes is a GPS spike, not a jump."""
    if t.size < 3:
        return []
    steps = segment_lengths_m(lat, lon)
    dts = np.diff(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        fast = (steps >= TELEPORT_MIN_M) & (steps > TELEPORT_SPEED_FACTOR * MAX_SPEED_MPS[sport] * dts)
    out = []
    skip_until = -1
    x, y = local_xy(lat, lon)
    for i in np.flatnonzero(fast):
        if i <= skip_until:
            continue
        after = np.arange(i + 2, min(t.size, i + 2 + SPIKE_FIXES))
        back = np.hypot(x[after] - x[i], y[after] - y[i]) < steps[i] / 2
        if back.any():  # a spike: out and back; its return step is part of it
            skip_until = int(after[np.argmax(back)]) - 1
            continue
        out.append({"t": float(t[i]), "t1": float(t[i + 1]), "metres": float(steps[i]), "seconds": float(dts[i]),
                    "lat": float(lat[i]), "lon": float(lon[i]), "lat1": float(lat[i + 1]), "lon1": float(lon[i + 1])})
    return out


def gaps(t: np.ndarray, lat: np.ndarray, lon: np.ndarray, ele: np.ndarray, gap_s: float,
         pauses=(), hr: np.ndarray | None = None) -> list[dict]:
    """Recording gaps whose ends lie at least GAP_MIN_M apart in a straight line: fixes more
    than ``gap_s`` apart in time, the path between them unseen. Each has its straight line,
    its duration and the elevation either side (the median of up to five fixes; NaN when
    not recorded), and with ``hr`` the heart rate either side (the median over GAP_HR_BEFORE_S
    before and GAP_HR_AFTER_S after) and the activity's low heart rate (its 10th percentile).
    A gap overlapping one of ``pauses`` (start, end), an explicit pause, is
    left out: the athlete said they stopped, and the summary counts nothing across it.

    Nothing else reads them: the distance and speeds leave a gap out (nobody saw how it was
    crossed), and a jump needs a step several times faster than the sport allows, which a
    gap of minutes never is, whatever vehicle crossed it.
    """
    if t.size < 2:
        return []
    steps = segment_lengths_m(lat, lon)
    dts = np.diff(t)
    out = []
    found = (dts > gap_s) & (steps >= GAP_MIN_M)
    if pauses:
        found &= ~_crosses_pause(t[:-1], t[1:], pauses)
    hr_ok = np.isfinite(hr) & (hr > 40) & (hr < 230) if hr is not None else np.zeros(t.size, dtype=bool)
    hr_low = float(np.percentile(hr[hr_ok], 10)) if hr_ok.sum() >= 30 else math.nan
    for i in np.flatnonzero(found):
        sides = []
        for side in (ele[max(0, i - 4):i + 1], ele[i + 1:i + 6]):
            side = side[np.isfinite(side)]
            sides.append(float(np.median(side)) if side.size else math.nan)
        beats = []
        for near in ((t > t[i] - GAP_HR_BEFORE_S) & (t <= t[i]), (t >= t[i + 1]) & (t < t[i + 1] + GAP_HR_AFTER_S)):
            near &= hr_ok
            beats.append(float(np.median(hr[near])) if near.any() else math.nan)
        out.append({"t": float(t[i]), "t1": float(t[i + 1]), "metres": float(steps[i]), "seconds": float(dts[i]),
                    "lat": float(lat[i]), "lon": float(lon[i]), "lat1": float(lat[i + 1]), "lon1": float(lon[i + 1]),
                    "ele": sides[0], "ele1": sides[1], "hr": beats[0], "hr1": beats[1], "hr_low": hr_low})
    return out
