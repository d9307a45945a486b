"""The phone's motion hints reach the anomaly detector as one signal: they lower the vehicle
model's bar only where the speed agrees, and never flag on their own."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from core.anomaly.detector import HINT_THRESHOLD_DROP, vehicle_hits
from core.anomaly.features import track_features
from core.devices.hints import hints_from_rows
from core.tracks.formats import load_track

RUN_FILE = "sportstracker/Garmin_Forerunner_910XT-Running.fit"


class StubVehicle:
    """A vehicle model whose one stretch has a set probability and speed."""

    threshold = 0.8

    def __init__(self, probability: float, t0: float, t1: float, speed_mps: float):
        self.stretch = {"t0": t0, "t1": t1, "metres": speed_mps * (t1 - t0), "mean_probability": probability,
                        "max_probability": probability, "windows": 3}

    def stretches(self, track, threshold=None):
        limit = self.threshold if threshold is None else threshold
        return [dict(self.stretch)] if self.stretch["max_probability"] >= limit else []


@pytest.fixture(scope="module")
def run(shared_tracks):
    track = load_track(shared_tracks / RUN_FILE)
    return track, track_features(track, "run")


def phone_says(track, motion: str | None, share: float = 1.0, is_moving: bool | None = None):
    t = track.t[np.isfinite(track.t)]
    rows = [(float(ti), is_moving, motion if (i % 100) < share * 100 else "running", None) for i, ti in enumerate(t)]
    return hints_from_rows(rows)


def hits(run, probability, speed, hints):
    track, features = run
    t0 = float(features.series.t[0]) + 600
    model = SimpleNamespace(vehicle=StubVehicle(probability, t0, t0 + 360, speed))
    return [h.code for h in vehicle_hits(track, features, model, [], hints)]


def test_a_run_the_phone_wrongly_calls_a_drive_is_not_flagged_for_that(run):
    """Every fix says in_vehicle, the model finds the stretch somewhat car-like, but at a
    runner's speed: no reason."""
    track, _ = run
    in_car = phone_says(track, "in_vehicle")
    assert hits(run, 0.8 - HINT_THRESHOLD_DROP + 0.05, 3.3, in_car) == []
    assert hits(run, 0.2, 12.0, in_car) == []  # fast, but nothing moves like a car


def test_hints_lower_the_bar_only_with_speed_evidence(run):
    track, _ = run
    in_car = phone_says(track, "in_vehicle")
    probability = 0.8 - HINT_THRESHOLD_DROP + 0.05
    assert hits(run, probability, 12.0, None) == []  # below the model's bar: no reason without hints
    assert hits(run, probability, 12.0, in_car) == ["vehicle_hint"]
    assert hits(run, probability, 12.0, phone_says(track, "in_vehicle", share=0.3)) == []  # no majority
    # A phone that says it is not moving while the fix goes fast: the same signal.
    assert hits(run, probability, 12.0, phone_says(track, None, is_moving=False)) == []  # its own speed unknown
    still_fast = hints_from_rows([(float(t), False, None, 12.0) for t in track.t[np.isfinite(track.t)]])
    assert hits(run, probability, 12.0, still_fast) == ["vehicle_hint"]


def test_a_car_stretch_is_caught_with_or_without_hints(run):
    track, _ = run
    assert hits(run, 0.95, 12.0, None) == ["vehicle_model"]
    assert hits(run, 0.95, 12.0, phone_says(track, "in_vehicle")) == ["vehicle_model"]
    assert hits(run, 0.95, 12.0, phone_says(track, "running")) == ["vehicle_model"]


def test_scoring_reads_the_stored_hints(Sessions, make_device, monkeypatch):
    """assess_stored hands the detector the activity's stored hints (None for other activities)."""
    import core.anomaly.scoring as scoring
    from core.activities.tables import Activity
    from core.devices.fixes import Fix, store_fixes

    seen = []

    def fake_assess(track, sport, model, baseline, candidates, threshold=None, pauses=(), hints=None):
        seen.append(hints)
        raise RuntimeError("enough")

    monkeypatch.setattr(scoring, "assess", fake_assess)
    device = make_device("ride")
    t0 = 1_750_000_000.0
    fixes = [Fix(t0 + i * 5, 45 + i * 1e-4, 7.0, motion="in_vehicle" if i % 2 else None) for i in range(20)]
    out = store_fixes(Sessions, [(device, f) for f in fixes], now=t0 + 200, idle_s=600)
    with Sessions() as s, pytest.raises(RuntimeError):
        scoring.assess_stored(s, s.get(Activity, out[0].activity_id), None)
    assert len(seen[0]) == 10 and seen[0].vehicle.all()
