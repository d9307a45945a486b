"""Scoring throughput of the anomaly detector: activities per second (cleaning, features,
rules, copy check and models included) and the latency one completed activity adds.

    .venv/bin/python -m bench.anomaly [--count 200]

Scores the real recordings in ../shared/data/tracks (when present) and generated runs and
rides, as the worker does, against a model trained first (not timed), with the learned
vehicle model when the real drives in ../shared/data/vehicles are there. Each activity is
checked for a copy against the other real recordings (those near it are compared, as the
worker compares the other athletes' activities near it).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from core.anomaly.detector import assess, fingerprint_of
from core.anomaly.features import track_features
from core.anomaly.model import PopulationModel
from core.anomaly.training import feature_rows, population, real_recordings
from core.anomaly.vehicle import VehicleModel, vehicle_examples
from core.config import load_settings
from core.synthetic.tracks import generated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="activities to score")
    args = parser.parse_args()
    real = real_recordings(load_settings().shared_tracks_dir)
    rows = feature_rows(population(real))
    model = PopulationModel.train({s: np.array(r) for s, r in rows.items()})
    examples = vehicle_examples(load_settings().shared_tracks_dir, humans=real)
    if {label for _, _, label in examples} == {0, 1}:
        model.vehicle = VehicleModel.train(examples)
    tracks = [t for _, t in real] + generated(max(0, args.count - len(real)), seed=99)
    tracks = (tracks * (args.count // max(len(tracks), 1) + 1))[: args.count]
    points = sum(len(t) for t in tracks)
    prints = [(id(t), name, fingerprint_of(track_features(t, t.sport))) for name, t in real]
    latencies = []
    began = time.perf_counter()
    for track in tracks:
        others = [(name, fp) for key, name, fp in prints if fp and key != id(track)]
        t0 = time.perf_counter()
        assess(track, track.sport if track.sport in ("run", "ride") else "ride", model, candidates=others)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - began
    print(f"scored {len(tracks)} activities ({points:,} points, {len(real)} real recordings among them) "
          f"in {elapsed:.2f} s on one core, vehicle model {'on' if model.vehicle else 'off'}")
    print(f"throughput: {len(tracks) / elapsed:.1f} activities/s, {points / elapsed:,.0f} points/s")
    print(f"added latency per completed activity: median {statistics.median(latencies) * 1000:.0f} ms, "
          f"p99 {np.percentile(latencies, 99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
