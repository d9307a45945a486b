"""The sport of an activity made from a device's fixes whose token names none: from its speeds,
with the app's activity types to settle the uncertain middle.

The rule: a ride when the 90th percentile of the moving speed (``core.tracks.stats``'
profile speed over each point's last 5 s of moving time, points faster than 1 m/s) is above
``RIDE_P90_MPS`` (5.5 m/s, 19.8 km/h): a tenth of the moving time faster than all but the
best runners race. Rides coast downhill and sprint away from junctions; runners hold their
pace. Within ``UNSURE_MPS`` of the bar the app's activity types decide when at least
``HINT_MIN_FIXES`` of the fixes carry a sport's type (on_bicycle against running, on_foot,
walking) and ``HINT_MAJORITY`` of those agree.

Measured on the real recordings (``python -m core.devices.sport``, sport from each file's own
tag): see docs/devices.md for the figures. The bar was chosen on those same recordings, so
the figure is how well it separates them, not a held-out estimate.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from core.tracks.cleaning import clean_track
from core.tracks.stats import build_profile
from core.tracks.track import Track

RIDE_P90_MPS = 5.5
UNSURE_MPS = 1.0
MOVING_MPS = 1.0
HINT_MIN_FIXES = 20
HINT_MAJORITY = 2 / 3
RIDE_MOTIONS = frozenset({"on_bicycle", "cycling", "bicycle", "in_bicycle"})
RUN_MOTIONS = frozenset({"running", "on_foot", "walking"})


def moving_speed_p90(track: Track, pauses=None) -> float | None:
    """The 90th percentile of the moving speed of the cleaned track (m/s), None without any."""
    probe = track.take(np.ones(len(track), dtype=bool))
    probe.sport = "other"  # a ride's limits: a fast stretch is not cut as a glitch
    profile, _ = build_profile(clean_track(probe), pauses)
    v = profile.speed_mps
    moving = np.isfinite(v) & (v > MOVING_MPS)
    return float(np.percentile(v[moving], 90)) if moving.any() else None


def hinted_sport(motions: Iterable[str | None]) -> str | None:
    """The sport a clear majority of the app's activity types agree on, else None."""
    ride = run = 0
    for m in motions:
        if m in RIDE_MOTIONS:
            ride += 1
        elif m in RUN_MOTIONS:
            run += 1
    total = ride + run
    if total < HINT_MIN_FIXES:
        return None
    if ride >= HINT_MAJORITY * total:
        return "ride"
    if run >= HINT_MAJORITY * total:
        return "run"
    return None


def infer_sport(track: Track, motions: Iterable[str | None] = (), pauses=None) -> str:
    """Run or ride, from the track's speeds (and the app's activity types when the speeds
    are near the bar); "run" when it never moved."""
    p90 = moving_speed_p90(track, pauses)
    if p90 is None:
        return "run"
    by_speed = "ride" if p90 > RIDE_P90_MPS else "run"
    if abs(p90 - RIDE_P90_MPS) <= UNSURE_MPS:
        return hinted_sport(motions) or by_speed
    return by_speed


# ---------------------------------------------------------------------------------------
# The rule's accuracy on the real recordings


def labelled_recordings(folder: Path) -> list[tuple[str, Track]]:
    """Outdoor runs and rides with GPS (at least 100 fixes over 5 minutes) whose file says
    its sport, one copy of each recording."""
    from core.tracks.formats import outdoor_recordings

    return outdoor_recordings(folder, 300.0)


def every(track: Track, seconds: float) -> Track:
    """The track thinned to at most one fix per ``seconds`` (a phone app's interval)."""
    t = track.t
    keep = np.zeros(len(track), dtype=bool)
    last = -np.inf
    for i, ti in enumerate(t):
        if np.isfinite(ti) and ti - last >= seconds:
            keep[i] = True
            last = ti
    return track.take(keep)


def accuracy(folder: Path, intervals=(0.0, 5.0, 15.0)) -> dict:
    """How often ``infer_sport`` (speeds only) names each recording's sport, at the device's
    own sampling and thinned to one fix per 5 and 15 s; with the misses."""
    recordings = labelled_recordings(folder)
    out = {"recordings": len(recordings), "runs": sum(t.sport == "run" for _, t in recordings), "by_interval": {}}
    for interval in intervals:
        misses = []
        for name, track in recordings:
            probe = every(track, interval) if interval else track
            guess = infer_sport(probe)
            if guess != track.sport:
                misses.append(f"{name} ({track.sport}, read as {guess})")
        right = len(recordings) - len(misses)
        out["by_interval"][interval] = {"right": right, "share": right / len(recordings) if recordings else None,
                                        "misses": misses}
    return out


def main(argv: list[str] | None = None) -> int:
    from core.config import load_settings

    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0]) if argv else load_settings().shared_tracks_dir
    if folder is None or not Path(folder).is_dir():
        print("no recordings folder (give one, or set TRACKER_SHARED_TRACKS)", file=sys.stderr)
        return 2
    result = accuracy(Path(folder))
    print(f"{result['recordings']} recordings ({result['runs']} runs, {result['recordings'] - result['runs']} rides); "
          f"ride when the moving speed's 90th percentile is above {RIDE_P90_MPS} m/s")
    for interval, r in result["by_interval"].items():
        label = "own sampling" if not interval else f"one fix per {interval:g} s"
        print(f"{label}: {r['right']}/{result['recordings']} right ({r['share']:.1%})")
        for miss in r["misses"]:
            print(f"  missed: {miss}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
