"""Shapes and the matching rule, without a database: GPS noise, either direction, joining
a loop anywhere, partial overlap, trimmed ends, and real recordings of one course."""

from __future__ import annotations

import numpy as np
import pytest

from core.routes.shape import (
    MIN_PATH_M,
    TRIM_M,
    cells,
    longest_run,
    match,
    samples_from_bytes,
    shape_of,
    simplify,
)
from core.tracks.formats import load_track
from tests.core.routes.ways import LONG_RIDE, LOOP, metres_from, polygon, track, walk

LAT0, LON0 = 48.20, 16.37


def loop_shape(start_frac=0.0, reverse=False, noise=4.0, seed=1, dt=5.0):
    return shape_of(track(walk(LOOP, 3.0, dt, start_frac, reverse), LAT0, LON0, dt, noise_m=noise, seed=seed))


def test_a_loop_joined_anywhere_and_run_either_way_is_one_route():
    a = loop_shape()
    b = loop_shape(start_frac=0.4, reverse=True, noise=8.0, seed=2)
    assert a.kind == b.kind == "loop"
    same = match(b, a.lat, a.lon, [a.start, a.end], b_closed=True)
    assert same is not None and same.coverage > 0.9
    assert same.direction == -1
    forward = match(loop_shape(start_frac=0.7, seed=3), a.lat, a.lon, [a.start, a.end], b_closed=True)
    assert forward is not None and forward.direction == 1


def test_nothing_of_a_shape_lies_near_where_the_activity_began_or_ended():
    s = loop_shape(start_frac=0.3)
    for lat, lon in zip(s.lat, s.lon):
        assert metres_from(lat, lon, *s.start) > TRIM_M
        assert metres_from(lat, lon, *s.end) > TRIM_M
    # The stored samples are what matching reads back.
    lat, lon = samples_from_bytes(s.to_bytes())
    assert np.allclose(lat, s.lat, atol=1e-5) and np.allclose(lon, s.lon, atol=1e-5)


def test_a_loop_inside_a_long_ride_is_another_route_and_a_small_detour_is_not():
    loop = loop_shape()
    ride = shape_of(track(walk(LONG_RIDE, 8.0, 3.0), LAT0, LON0, 3.0, sport="ride"))
    assert ride.kind == "one_way"
    assert match(ride, loop.lat, loop.lon, [loop.start, loop.end], b_closed=True) is None
    assert match(loop, ride.lat, ride.lon, [ride.start, ride.end]) is None
    # The same loop with a 300 m spur out and back on one side: still the loop.
    spur = polygon((0, 0), (1000, 0), (1000, -300), (1000, 0), (2000, 0), (2000, 1000), (0, 1000))
    detour = shape_of(track(walk(spur, 3.0, 5.0, 0.5), LAT0, LON0, 5.0, seed=4))
    assert match(detour, loop.lat, loop.lon, [loop.start, loop.end], b_closed=True) is not None


def test_a_parallel_street_is_not_the_same_way():
    a = loop_shape()
    shifted = shape_of(track(walk(LOOP + [0.0, 150.0], 3.0, 5.0), LAT0, LON0, 5.0, seed=5))
    assert match(shifted, a.lat, a.lon, [a.start, a.end], b_closed=True) is None


def test_out_and_back_and_one_way_are_told_apart():
    line = np.array([(0.0, 0.0), (3000.0, 0.0), (3000.0, 1500.0)])
    there = walk(line, 3.0, 5.0)
    out_back = shape_of(track(np.vstack([there, there[::-1]]), LAT0, LON0, 5.0))
    one_way = shape_of(track(there, LAT0, LON0, 5.0))
    assert out_back.kind == "out_and_back" and one_way.kind == "one_way"


def test_too_short_once_trimmed_or_indoors_is_no_shape():
    tiny = shape_of(track(walk(polygon((0, 0), (300, 0), (300, 300), (0, 300)), 3.0, 5.0), LAT0, LON0, 5.0))
    assert tiny is None
    t = track(walk(LOOP, 3.0, 5.0), LAT0, LON0, 5.0)
    t.indoor = True
    assert shape_of(t) is None
    assert MIN_PATH_M > 0


def test_simplify_and_longest_run():
    s = loop_shape()
    line = simplify(s.lat, s.lon, 50)
    assert 2 <= len(line) <= 50
    assert line[0] == [round(float(s.lat[0]), 5), round(float(s.lon[0]), 5)]
    assert longest_run(np.array([True, False, True, True, False, True])) == slice(2, 4)
    assert longest_run(np.array([False, False])) == slice(0, 0)
    assert len(cells(s.lat, s.lon)) >= 2


@pytest.mark.parametrize("pair, same", [
    (("goldencheetah/2018-10-03-07-45-28.fit", "goldencheetah/2018-10-03-08-05-11.fit"), True),
    (("goldencheetah/2018-10-03-07-45-28.fit", "goldencheetah/2018-10-03-08-23-16.fit"), True),
    (("goldencheetah/activity_790564264.tcx", "goldencheetah/activity_790564346.tcx"), True),
    # One recording holds the whole of the other and as much again: partial, not the same.
    (("goldencheetah/HRV-Data.fit", "goldencheetah/IpBike-HRV-Data.fit"), False),
    (("goldencheetah/2018-10-03-07-45-28.fit", "goldencheetah/activity_790564264.tcx"), False),
])
def test_real_rides_over_the_same_road_match(shared_tracks, pair, same):
    a, b = (shape_of(load_track(p, (shared_tracks / p).read_bytes())) for p in pair)
    assert (match(a, b.lat, b.lon, [b.start, b.end], b_closed=b.kind != "one_way") is not None) is same
    assert (match(b, a.lat, a.lon, [a.start, a.end], b_closed=a.kind != "one_way") is not None) is same


def test_a_short_loop_from_two_doors_on_it_is_one_route():
    """Each shape lacks what lies near its own door; the share leaves that out."""
    small = polygon((0, 0), (1000, 0), (1000, 600), (0, 600))
    a = shape_of(track(walk(small, 3.0, 5.0, 0.0), LAT0, LON0, 5.0, seed=6))
    b = shape_of(track(walk(small, 3.0, 5.0, 0.5, reverse=True), LAT0, LON0, 5.0, seed=7))
    found = match(b, a.lat, a.lon, [a.start, a.end], b_closed=True)
    assert found is not None and found.direction == -1
    assert match(a, b.lat, b.lon, [b.start, b.end], b_closed=True) is not None
