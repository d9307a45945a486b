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


def fingerprint_of(features: Features) -> dict | None:
    s = features.series
    return fingerprint(s.t, s.lat, s.lon, s.dist_m) if s is not None else None


def assess(track: Track, sport: str, model: PopulationModel | None, baseline: Baseline | None = None,
           candidates=(), threshold: float | None = None, now: float | None = None, pauses=()) -> Assessment:
    """Judge ``track`` as an activity of ``sport``; ``pauses`` are the (start, end) times the
    athlete paused the recording (a recording gap across one is no reason to flag).

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
            hits.append(Hit("copy", f"a copy of {label}: the same route within metres and the same "
                                    f"timing stretch by stretch", 1.0))
    hits.extend(vehicle_hits(track, features, model, hits))
    return Assessment(judge(features, hits, model, baseline, threshold), features, fp)


# How sure a stretch the vehicle model finds makes the verdict: beyond the default threshold
# on its own, though short of a broken physical limit.
VEHICLE_SEVERITY = 0.9


def vehicle_hits(track: Track, features: Features, model: PopulationModel | None, hits=()) -> list[Hit]:
    """Stretches the learned vehicle model finds, each named with where it starts; a stretch
    that a speed or power limit already reports is left to it, and so is a ride's stretch
    that descends more than 1% overall."""
    vehicle = getattr(model, "vehicle", None)
    if vehicle is None or not features.usable:
        return []
    series = features.series
    start = float(series.t[0])
    out = []
    for stretch in vehicle.stretches(track):
        if any(h.t0 is not None and h.t0 <= stretch["t1"] and stretch["t0"] <= h.t1 for h in hits):
            continue
        if features.sport == "ride" and series.ele is not None and stretch["metres"] > 0:
            # A ride's descent is where riders reach a car's speeds and brake like one.
            ends = np.interp([stretch["t0"], stretch["t1"]], series.t, series.ele)
            if np.isfinite(ends).all() and (ends[0] - ends[1]) / stretch["metres"] > RIDE_LEVEL_MAX_DESCENT:
                continue
        minutes = units.duration(stretch["t1"] - stretch["t0"])
        out.append(Hit(
            "vehicle_model",
            f"{stretch['metres'] / 1000:.1f} km over {minutes} from {units.duration(stretch['t0'] - start)} in "
            f"moves like a motor vehicle: its accelerations, stops and cornering match real drives, not "
            f"runners or riders (vehicle model {stretch['max_probability']:.2f})",
            VEHICLE_SEVERITY, stretch["t0"], stretch["t1"]))
    return out
