"""The route map's drawing data and the folium maps built from it, and the live map's
markers with hostile names, through streamlit-folium and in Chromium."""

from __future__ import annotations

import json
import random
import re
import time

import folium
import numpy as np
from streamlit_folium import _get_map_string

from core.synthetic.tracks import synthetic_track
from core.tracks.cleaning import clean_track
from core.tracks.stats import build_profile
from dashboard import assets
from dashboard.maps import (
    MAX_DRAWN_POINTS,
    PACE_COLOURS,
    base_map,
    live_map,
    map_of_route,
    route_layers,
    tooltip,
)
from tests.conftest import need
from tests.dashboard.conftest import HOSTILE


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


def hostile_athletes() -> list[tuple[float, float, str, str]]:
    """One athlete per hostile string, each at a place of their own, named and titled with it."""
    return [(round(38.74 + (k // 4) * 0.01, 6), round(-9.20 + (k % 4) * 0.012, 6), text, text or "Untitled")
            for k, text in enumerate(HOSTILE.values())]


def test_live_markers_reach_the_browser_with_names_and_titles_as_written():
    """streamlit-folium rewrites a map's script before sending it (renames ``_0`` suffixes,
    drops ``alert(coords);``, resolves ``{{'name'}}``): the names pass through untouched."""
    athletes = hostile_athletes()
    m = live_map(athletes)
    m.get_root().render()  # as st_folium does before taking the script
    script = _get_map_string(m)
    data = re.search(r"^\s*(\[\[.*\]\])\.forEach", script, re.M).group(1)
    assert json.loads(data) == [[la, lo, name, title] for la, lo, name, title in athletes]
    assert "bindTooltip(`" not in script and "live-marker" in script


def test_fixed_tooltips_are_escaped_for_folium_template_literals():
    m = base_map()
    tooltip("`${alert(1)}` <b>start</b>").add_to(folium.CircleMarker([1, 2]).add_to(m))
    page = m.get_root().render()
    literal = re.search(r"bindTooltip\(\s*`(.*?)(?<!\\)`", page, re.S).group(1)
    assert "\\`\\${alert(1)}\\`" in literal and "&lt;b&gt;start&lt;/b&gt;" in literal


def test_the_live_map_draws_every_athlete_in_chromium_and_runs_no_text(browser, tmp_path):
    """The map as the Live page sends it, opened in Chromium with the app's Leaflet: one
    marker per athlete, each tooltip showing the name and title as written, no dialog."""
    need(assets.installed(assets.LEAFLET), "Leaflet is not installed (python -m dashboard.assets)")
    athletes = hostile_athletes()
    page_html = live_map(athletes).get_root().render().replace("/app/static/leaflet/", f"{assets.LEAFLET.target}/")
    (tmp_path / "live.html").write_text(page_html)
    context = browser.new_context()
    pg = context.new_page()
    dialogs, errors = [], []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        pg.goto((tmp_path / "live.html").as_uri())
        markers = pg.locator("path.live-marker")
        markers.nth(len(athletes) - 1).wait_for(state="attached")
        assert markers.count() == len(athletes)
        tips = pg.evaluate("""() => {
            const map = Object.values(window).find(v => v instanceof L.Map);
            const out = [];
            map.eachLayer(l => { const t = l.getTooltip && l.getTooltip(); if (t) {
                const c = t.getContent(); out.push([l.getLatLng().lat, l.getLatLng().lng,
                    c.querySelector('.live-name').textContent, c.querySelector('.live-title').textContent]); } });
            return out; }""")
        assert sorted(map(tuple, tips)) == sorted(athletes)
        markers.first.hover()
        pg.locator(".leaflet-tooltip .live-name").wait_for()
        assert pg.locator(".leaflet-tooltip .live-name").text_content() == athletes[0][2]
        assert pg.locator("img[src='x'], svg[onload]").count() == 0
        assert dialogs == [] and errors == []
    finally:
        context.close()
