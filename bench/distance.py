"""Distance: accuracy against geographiclib and speed against a loop over the seed's haversine.

Prints, over every GPS track of the corpus, the worst relative error of our ellipsoidal sum
and of the seed's spherical haversine against the exact geodesic sum, then the per-point
time of our vectorised function (called once per track) and of a Python loop calling
``haversine`` on the same points, and their ratio.
"""

from __future__ import annotations

import time

import numpy as np
from _common import shared_tracks
from geographiclib.geodesic import Geodesic

from core.tracks.formats import load_track
from core.tracks.geo import haversine, track_length_m


def corpus() -> list[tuple[str, np.ndarray, np.ndarray]]:
    out = []
    for path in sorted(shared_tracks().glob("*/*")):
        if path.suffix.lower() not in (".gpx", ".tcx", ".fit"):
            continue
        track = load_track(path)
        ok = np.isfinite(track.lat) & np.isfinite(track.lon)
        if ok.sum() >= 2:
            out.append((path.name, track.lat[ok].copy(), track.lon[ok].copy()))
    return out


def loop_haversine_m(lat: np.ndarray, lon: np.ndarray) -> float:
    la, lo = lat.tolist(), lon.tolist()
    return 1000.0 * sum(haversine(la[i], lo[i], la[i + 1], lo[i + 1]) for i in range(len(la) - 1))


def main() -> None:
    tracks = corpus()
    points = sum(lat.size for _, lat, _ in tracks)
    worst_ours = worst_seed = 0.0
    for _name, lat, lon in tracks:
        exact = sum(Geodesic.WGS84.Inverse(a, b, c, d, Geodesic.DISTANCE)["s12"]
                    for a, b, c, d in zip(lat[:-1], lon[:-1], lat[1:], lon[1:]))
        worst_ours = max(worst_ours, abs(track_length_m(lat, lon) / exact - 1))
        worst_seed = max(worst_seed, abs(loop_haversine_m(lat, lon) / exact - 1))
    print(f"tracks: {len(tracks)}, GPS points: {points}")
    print(f"worst error vs geodesic: ellipsoidal {100 * worst_ours:.6f}%  seed haversine {100 * worst_seed:.4f}%")

    def timed(fn, repeats):
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _name, lat, lon in tracks:
                fn(lat, lon)
            best = min(best, time.perf_counter() - start)
        return best

    ours = timed(track_length_m, 20)
    seed = timed(loop_haversine_m, 3)
    print(f"per point: vectorised ellipsoidal {1e9 * ours / points:.1f} ns, "
          f"loop over seed haversine {1e9 * seed / points:.1f} ns")
    print(f"speed ratio (loop / vectorised): {seed / ours:.1f}x")


if __name__ == "__main__":
    main()
