"""One call that judges a track: clean, extract features, apply rules, look for a copy,
and combine with the population model and the athlete's baseline. No I/O: the callers
(the worker, the command line, the evaluation) bring the model, history and candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import units
from core.anomaly.duplicates import find_copy, fingerprint, nearby
from core.anomaly.features import Features, track_features
from core.anomaly.limits import RIDE_LEVEL_MAX_DESCENT
from core.anomaly.model import Baseline, PopulationModel, Verdict, judge
from core.anomaly.rules import Hit, check
from core.tracks.track import Track


@dataclass
class Assessment:
    verdict: Verdict
    features: Features
    fingerprint: dict | None


COPY_TAIL = ": the same route within metres and the same timing stretch by stretch"

def fingerprint_of(features: Features) -> dict | None:
    s = features.series
    return fingerprint(s.t, s.lat, s.lon, s.dist_m) if s is not None else None


def assess(track: Track, sport: str, model: PopulationModel | None, baseline: Baseline | None = None,
           candidates=(), threshold: float | None = None, now: float | None = None, pauses=(),
           hints=None) -> Assessment:
    """Judge ``track`` as an activity of ``sport``; ``pauses`` are the (start, end) times the
    athlete paused the recording (a recording gap across one is no reason to flag).
    ``hints``: the phone app's motion hints of its fixes (``core.devices.hints.Hints``), or
    None; see ``vehicle_hits``.

    ``candidates``: (label, fingerprint) of other athletes' activities to check for a copy,
    or a function of this track's fingerprint that returns them.
    """
    features = track_features(track, sport, now, pauses)
    hits = check(features)
    fp = fingerprint_of(features)
    if fp is not None:
        if callable(candidates):
            candidates = candidates(fp)
        close = [(label, other) for label, other in candidates if other and nearby(fp, other)]
        found = find_copy(fp, close)
        if found is not None:
            label, result = found
            hits.append(Hit("copy", f"a copy of {label}{COPY_TAIL}", 1.0))
    hits.extend(vehicle_hits(track, features, model, hits, hints))
    return Assessment(judge(features, hits, model, baseline, threshold), features, fp)


def as_athlete_sees(reason: str) -> str:
    """A reason as the flagged athlete is shown it: a copy's original (another athlete's
    activity, perhaps private) is named to moderators only."""
    if reason.startswith("a copy of ") and reason.endswith(COPY_TAIL):
        return f"a copy of another athlete's activity{COPY_TAIL}"
    return reason


# How sure a stretch the vehicle model finds makes the verdict: beyond the default threshold
# on its own, though short of a broken physical limit.
VEHICLE_SEVERITY = 0.9
# The phone's own hints (``core.devices.hints``) are one signal, never a reason alone. Where
# at least HINT_SHARE of a stretch's hinted fixes (HINT_MIN_FIXES or more) say "in a vehicle"
# (or "not moving" while going fast), the vehicle model's bar drops by HINT_THRESHOLD_DROP
# (never below HINT_MIN_THRESHOLD), and only for a stretch whose average speed is beyond
# the sport's usual pace (HINT_SPEED_MPS: 3:20/km running, 29 km/h riding). A run the phone
# wrongly calls a drive is judged as without hints: its windows do not move like a car's,
# nor that fast.
HINT_SHARE = 0.5
HINT_MIN_FIXES = 3
HINT_THRESHOLD_DROP = 0.25
HINT_MIN_THRESHOLD = 0.3
HINT_SPEED_MPS = {"run": 5.0, "ride": 8.0}


def vehicle_hits(track: Track, features: Features, model: PopulationModel | None, hits=(),
                 hints=None) -> list[Hit]:
    """Stretches the learned vehicle model finds, each named with where it starts; a stretch
    that a speed or power limit already reports is left to it, and so is a ride's stretch
    that descends more than 1% overall. With the phone's ``hints``, also the stretches the
    model finds at a lower bar where the phone says it was in a vehicle and the speed agrees
    (see HINT_SHARE)."""
    vehicle = getattr(model, "vehicle", None)
    if vehicle is None or not features.usable:
        return []
    series = features.series
    start = float(series.t[0])
    out: list[Hit] = []

    def kept(stretch) -> bool:
        if any(h.t0 is not None and h.t0 <= stretch["t1"] and stretch["t0"] <= h.t1 for h in [*hits, *out]):
            return False
        if features.sport == "ride" and series.ele is not None and stretch["metres"] > 0:
            # A ride's descent is where riders reach a car's speeds and brake like one.
            ends = np.interp([stretch["t0"], stretch["t1"]], series.t, series.ele)
            if np.isfinite(ends).all() and (ends[0] - ends[1]) / stretch["metres"] > RIDE_LEVEL_MAX_DESCENT:
                return False
        return True

    def where(stretch) -> str:
        minutes = units.duration(stretch["t1"] - stretch["t0"])
        return f"{stretch['metres'] / 1000:.1f} km over {minutes} from {units.duration(stretch['t0'] - start)} in"

    for stretch in vehicle.stretches(track):
        if not kept(stretch):
            continue
        out.append(Hit(
            "vehicle_model",
            f"{where(stretch)} moves like a motor vehicle: its accelerations, stops and cornering match real "
            f"drives, not runners or riders (vehicle model {stretch['max_probability']:.2f})",
            VEHICLE_SEVERITY, stretch["t0"], stretch["t1"]))
    if hints is None or not len(hints):
        return out
    low = max(HINT_MIN_THRESHOLD, float(vehicle.threshold) - HINT_THRESHOLD_DROP)
    bar = HINT_SPEED_MPS.get(features.sport, HINT_SPEED_MPS["ride"])
    for stretch in vehicle.stretches(track, threshold=low):
        share, n = hints.vehicle_share(stretch["t0"], stretch["t1"])
        span = stretch["t1"] - stretch["t0"]
        speed = stretch["metres"] / span if span > 0 else 0.0
        if n < HINT_MIN_FIXES or share < HINT_SHARE or speed < bar or not kept(stretch):
            continue
        out.append(Hit(
            "vehicle_hint",
            f"{where(stretch)} goes at {units.speed(speed)} "
            f"and moves somewhat like a motor vehicle (vehicle model {stretch['max_probability']:.2f}), and the "
            f"phone itself said it was in a vehicle for {share:.0%} of it",
            VEHICLE_SEVERITY, stretch["t0"], stretch["t1"]))
    return out
