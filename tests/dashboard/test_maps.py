"""The route map's drawing data and the folium maps built from it."""

from __future__ import annotations

import random
import re
import time

import numpy as np

from core.cleaning import clean_track
from core.demo import synthetic_track
from core.trackstats import build_profile
from dashboard.maps import MAX_DRAWN_POINTS, PACE_COLOURS, map_of_route, route_layers


def long_ride():
    """About 13,000 fixes and 100 km, as the bench's long ride."""
    track = synthetic_track(random.Random(7), "ride", time.time() - 40_000, 46.05, 14.5, 13_000 * 3 / 60, 7.5)
    profile, _ = build_profile(clean_track(track), [])
    return profile


def test_a_long_ride_is_drawn_simplified_with_a_mark_every_5_km():
    p = long_ride()
    layers = route_layers(p.lat, p.lon, p.speed_mps, p.cum_distance_m)
    runs = [line for _, lines in layers["lines"] for line in lines]
    drawn = sum(len(line) for line in runs) - (len(runs) - 1)  # each run repeats the point it joins at
    assert drawn <= MAX_DRAWN_POINTS and p.lat.size > 4 * drawn
    assert {colour for colour, _ in layers["lines"]} <= set(PACE_COLOURS) and len(layers["lines"]) == 5
    km = p.cum_distance_m[-1] / 1000
    assert km > 60 and [m[2] for m in layers["marks"]] == [str(k) for k in range(5, int(km) + 1, 5)][:len(layers["marks"])]
    assert len(layers["marks"]) == int((km - 1e-9) // 5)
    assert layers["start"] == [float(p.lat[0]), float(p.lon[0])] and layers["finish"] == [float(p.lat[-1]), float(p.lon[-1])]


def test_each_view_gets_a_map_of_the_same_size():
    """A folium map gains elements each time it is rendered: every view builds its own."""
    p = long_ride()
    layers = route_layers(p.lat, p.lon, p.speed_mps, p.cum_distance_m)
    pages = []
    for _ in range(3):
        m = map_of_route(layers)
        m.get_root().render()
        pages.append(m.get_root().render())
    assert len({len(page) for page in pages}) == 1
    page = pages[0]
    assert page.count('class="km-marker"') == 0 and "km-marker" in page  # drawn by one script
    assert page.count("route-line") >= 5 and "start-marker" in page and "finish-marker" in page
    assert not re.search(r"https?://(cdn|code|maxcdn|cdnjs|netdna)\.", page)  # nothing from a CDN


def test_an_empty_track_gives_a_plain_map():
    layers = route_layers(np.array([]), np.array([]))
    assert layers["bounds"] is None and layers["lines"] == []
    assert "route-line" not in map_of_route(layers).get_root().render()
