"""Distance: the seed's haversine and the ellipsoidal track length against geographiclib."""

import math

import numpy as np
import pytest
from geographiclib.geodesic import Geodesic

from core.tracks.formats import load_track
from core.tracks.geo import distance_m, haversine, segment_lengths_m, track_length_m


def test_haversine_matches_the_seeds_example():
    """New York to Los Angeles is about 3935.75 km on the mean sphere."""
    assert haversine(40.7128, -74.0060, 34.0522, -118.2437) == pytest.approx(3935.746, abs=0.01)


def test_segment_lengths_agree_with_geodesic_for_short_steps():
    """Steps of a few metres to a kilometre match the exact geodesic to a part per million."""
    rng = np.random.default_rng(1)
    lat = rng.uniform(-80, 80, 200)
    lon = rng.uniform(-179, 179, 200)
    for step_deg in (1e-5, 1e-4, 1e-3, 1e-2):
        lat2, lon2 = lat + step_deg * rng.normal(size=200), lon + step_deg * rng.normal(size=200)
        ours = segment_lengths_m(np.ravel(np.column_stack([lat, lat2])), np.ravel(np.column_stack([lon, lon2])))[::2]
        exact = np.array([Geodesic.WGS84.Inverse(a, b, c, d)["s12"] for a, b, c, d in zip(lat, lon, lat2, lon2)])
        assert np.max(np.abs(ours - exact) / exact) < 1e-6


def test_a_step_across_the_antimeridian_is_short():
    """Crossing 180 degrees is a step of metres, not of the whole globe."""
    assert distance_m(0.0, 179.99999, 0.0, -179.99999) == pytest.approx(2.2264, rel=1e-3)


def test_every_real_track_is_within_0_001_percent_of_the_geodesic_sum(shared_tracks):
    """On each GPS track of the corpus our summed distance matches geographiclib's."""
    checked = 0
    for path in sorted(shared_tracks.glob("*/*")):
        if path.suffix.lower() not in (".gpx", ".tcx", ".fit"):
            continue
        track = load_track(path)
        ok = np.isfinite(track.lat) & np.isfinite(track.lon)
        lat, lon = track.lat[ok], track.lon[ok]
        if lat.size < 2:
            continue
        exact = sum(Geodesic.WGS84.Inverse(a, b, c, d, Geodesic.DISTANCE)["s12"]
                    for a, b, c, d in zip(lat[:-1], lon[:-1], lat[1:], lon[1:]))
        ours = track_length_m(lat, lon)
        assert math.isclose(ours, exact, rel_tol=1e-5), path.name
        checked += 1
    assert checked >= 70


def test_the_scalar_step_matches_the_vectorised_one():
    """distance_m and segment_lengths_m agree, so live stats and summaries measure alike."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        lat, lon = rng.uniform(-85, 85), rng.uniform(-180, 180)
        lat2, lon2 = lat + rng.normal(0, 0.01), lon + rng.normal(0, 0.01)
        vec = segment_lengths_m(np.array([lat, lat2]), np.array([lon, lon2]))[0]
        assert distance_m(lat, lon, lat2, lon2) == pytest.approx(vec, rel=1e-9)
