"""Folium maps whose scripts and styles come from this app, on a configurable tile server.

``LocalMap`` replaces folium's CDN links (Leaflet, jQuery, Bootstrap, Font Awesome) with the
Leaflet copy that ``python -m dashboard.assets`` installs under ``dashboard/static``; the
maps only use elements that need nothing else (lines, circle markers, div icons). With no
tile server reachable the tiles stay grey but the route and its markers still draw.

Text reaches a map's script in two ways, both through ``dashboard.escape``: fixed labels as
folium tooltips (``tooltip``), and anything a person wrote (athletes' names, titles) as
JSON data that the map's own script puts into the page with ``textContent``, never as markup.
"""

from __future__ import annotations

import warnings

import folium
import numpy as np
from branca.element import MacroElement
from jinja2 import Template

from core.config import load_settings
from core.tracks.geo import EARTH_MEAN_RADIUS_KM
from dashboard import escape
from dashboard.assets import LEAFLET_CSS, LEAFLET_IMAGES, LEAFLET_JS

# Slow to fast: blue, teal, green, orange, red.
PACE_COLOURS = ("#2c7bb6", "#00a6ca", "#7fbf3f", "#fdae61", "#d7191c")
ROUTE_COLOUR = "#fc4c02"
MAX_DRAWN_POINTS = 1500


class LocalMap(folium.Map):
    """A folium map that loads Leaflet from the app itself."""

    default_js = [("leaflet", LEAFLET_JS)]
    default_css = [("leaflet_css", LEAFLET_CSS)]


def base_map(lat: np.ndarray | None = None, lon: np.ndarray | None = None, **kwargs) -> LocalMap:
    settings = load_settings()
    m = LocalMap(tiles=None, control_scale=True, prefer_canvas=False, **kwargs)
    _IconPath().add_to(m)
    folium.TileLayer(settings.tile_url, attr=settings.tile_attribution, name="map", max_zoom=19).add_to(m)
    if lat is not None and lon is not None and len(lat):
        m.fit_bounds([[float(np.nanmin(lat)), float(np.nanmin(lon))],
                      [float(np.nanmax(lat)), float(np.nanmax(lon))]], padding=(12, 12))
    else:
        m.location, m.options["zoom"] = [46.05, 14.5], 4
    return m


def simplify(lat: np.ndarray, lon: np.ndarray, tolerance_m: float) -> np.ndarray:
    """Indices of the points Ramer-Douglas-Peucker keeps at ``tolerance_m`` (ends always kept)."""
    n = lat.size
    if n <= 2:
        return np.arange(n)
    k = np.pi / 180 * EARTH_MEAN_RADIUS_KM * 1000
    y = (lat - lat[0]) * k
    x = (lon - lon[0]) * k * np.cos(np.radians(np.nanmean(lat)))
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        xs, ys = x[a + 1:b], y[a + 1:b]
        dx, dy = x[b] - x[a], y[b] - y[a]
        norm = np.hypot(dx, dy)
        if norm == 0:
            dist = np.hypot(xs - x[a], ys - y[a])
        else:
            dist = np.abs(dx * (y[a] - ys) - dy * (x[a] - xs)) / norm
        i = int(np.argmax(dist))
        if dist[i] > tolerance_m:
            mid = a + 1 + i
            keep[mid] = True
            stack.append((a, mid))
            stack.append((mid, b))
    return np.flatnonzero(keep)


def drawable(lat: np.ndarray, lon: np.ndarray, max_points: int = MAX_DRAWN_POINTS) -> np.ndarray:
    """Indices for drawing: simplified until at most ``max_points`` remain."""
    tolerance = 2.0
    idx = simplify(lat, lon, tolerance)
    while idx.size > max_points:
        tolerance *= 2
        idx = simplify(lat, lon, tolerance)
    return idx


def pace_bins(speed: np.ndarray) -> np.ndarray:
    """Each value's colour bin (0 slow .. 4 fast) by the activity's own speed quintiles."""
    finite = speed[np.isfinite(speed)]
    if finite.size < 5:
        return np.full(speed.size, 2)
    edges = np.quantile(finite, [0.2, 0.4, 0.6, 0.8])
    return np.searchsorted(edges, np.nan_to_num(speed, nan=float(np.median(finite))))


def _rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    """Centred rolling median (NaN-aware), so one noisy fix does not flip a segment's colour."""
    if values.size < window:
        return values
    half = window // 2
    padded = np.concatenate([np.full(half, np.nan), values, np.full(half, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN, as wanted
        return np.nanmedian(windows, axis=1)


def _steady(bins: np.ndarray, shortest: int = 4) -> np.ndarray:
    """Runs of fewer than ``shortest`` segments take the colour before them (fewer, longer lines)."""
    out = bins.copy()
    start = 0
    for k in range(1, out.size + 1):
        if k == out.size or out[k] != out[start]:
            if k - start < shortest and start > 0:
                out[start:k] = out[start - 1]
            start = k
    return out


class _IconPath(MacroElement):
    """Points Leaflet's default marker images at the app's copy (it would guess a wrong URL)."""

    _template = Template("{% macro script(this, kwargs) %}L.Icon.Default.imagePath = "
                         + escape.js_string(LEAFLET_IMAGES) + ";{% endmacro %}")


def tooltip(text: str) -> folium.Tooltip:
    """A folium tooltip showing ``text`` as written (folium writes it as HTML into a template
    literal). For fixed labels: the map script's text is rewritten by streamlit-folium, so
    what people wrote goes in as data (see ``live_map``)."""
    return folium.Tooltip(escape.folium_html(text))


def _coords(lat: np.ndarray, lon: np.ndarray, idx: np.ndarray) -> list[list[float]]:
    """[lat, lon] pairs rounded to 1e-5 degrees (about a metre): half the page weight of full floats."""
    return np.column_stack([lat[idx], lon[idx]]).round(5).tolist()


def route_layers(lat: np.ndarray, lon: np.ndarray, speed: np.ndarray | None = None,
                 cum_distance_m: np.ndarray | None = None, km_markers: bool = True,
                 unit_m: float = 1000.0) -> dict:
    """What the route map draws, as plain data: simplified lines by colour, distance marks,
    start and finish. Simplifying a long track is the slow part, so callers cache this."""
    out: dict = {"bounds": None, "lines": [], "marks": [], "start": None, "finish": None}
    if lat.size == 0:
        return out
    out["bounds"] = [[float(np.nanmin(lat)), float(np.nanmin(lon))], [float(np.nanmax(lat)), float(np.nanmax(lon))]]
    idx = drawable(lat, lon)
    if speed is not None and speed.size == lat.size and idx.size > 1:
        # Each drawn segment takes the mean speed of the recorded points it stands for.
        seg_speed = np.array([np.nanmean(speed[a:b + 1]) if np.isfinite(speed[a:b + 1]).any() else np.nan
                              for a, b in zip(idx[:-1], idx[1:])])
        bins = _steady(pace_bins(_rolling_median(seg_speed, 9)))
        # One multi-line per colour: five map layers however often the pace changes.
        runs: dict[int, list] = {}
        start = 0
        for k in range(1, bins.size + 1):
            if k == bins.size or bins[k] != bins[start]:
                runs.setdefault(int(bins[start]), []).append(_coords(lat, lon, idx[start:k + 1]))
                start = k
        out["lines"] = [(PACE_COLOURS[colour], lines) for colour, lines in sorted(runs.items())]
    else:
        out["lines"] = [(ROUTE_COLOUR, [_coords(lat, lon, idx)])]
    if km_markers and cum_distance_m is not None and cum_distance_m.size == lat.size and cum_distance_m[-1] > 0:
        step = unit_m if cum_distance_m[-1] / unit_m <= 60 else unit_m * 5
        for mark in np.arange(step, cum_distance_m[-1], step):
            i = min(int(np.searchsorted(cum_distance_m, mark)), lat.size - 1)
            out["marks"].append([round(float(lat[i]), 5), round(float(lon[i]), 5), f"{mark / unit_m:.0f}"])
    out["start"] = [float(lat[0]), float(lon[0])]
    out["finish"] = [float(lat[-1]), float(lon[-1])]
    return out


def map_of_route(layers: dict) -> LocalMap:
    """A new folium map of ``route_layers`` output (a map object is rendered once: build one per page run)."""
    if layers["bounds"] is None:
        return base_map()
    (south, west), (north, east) = layers["bounds"]
    m = base_map(np.array([south, north]), np.array([west, east]))
    width = 5 if len(layers["lines"]) > 1 else 4
    for colour, lines in layers["lines"]:
        folium.PolyLine(lines if len(lines) > 1 else lines[0], color=colour, weight=width, opacity=0.9,
                        class_name="route-line").add_to(m)
    if layers["marks"]:
        _DistanceMarks(layers["marks"]).add_to(m)
    folium.CircleMarker(layers["start"], radius=7, color="#ffffff", weight=2, fill=True,
                        fill_color="#2e9e44", fill_opacity=1, tooltip=tooltip("start"),
                        class_name="start-marker").add_to(m)
    folium.CircleMarker(layers["finish"], radius=7, color="#ffffff", weight=2, fill=True,
                        fill_color="#c0392b", fill_opacity=1, tooltip=tooltip("finish"),
                        class_name="finish-marker").add_to(m)
    m.get_root().header.add_child(folium.Element(
        "<style>.km-marker{background:#fff;border:2px solid #242428;border-radius:50%;font:bold 10px/16px "
        "sans-serif;text-align:center;width:16px;height:16px}</style>"))
    return m


class _DistanceMarks(MacroElement):
    """Numbered distance markers, all drawn by one script (a folium Marker each renders
    several templates: a long ride's markers took longer than the rest of the map)."""

    _template = Template("""{% macro script(this, kwargs) %}
    {{ this.marks_json }}.forEach(function (m) {
        var label = document.createElement("div");
        label.className = "km-marker";
        label.textContent = m[2];
        L.marker([m[0], m[1]], {icon: L.divIcon({html: label, className: "km-icon", iconSize: [20, 20],
                                                  iconAnchor: [10, 10]})}).addTo({{ this._parent.get_name() }});
    });
    {% endmacro %}""")

    def __init__(self, marks: list[list]):
        super().__init__()
        self._name = "DistanceMarks"
        self.marks_json = escape.json_for_script(marks)


def route_sketch(polyline: list) -> LocalMap:
    """A small map of a suggested route: its line alone, as ``core.routes`` keeps it (clear of
    every athlete's start and end), with no start or finish marker. The wheel scrolls the
    page past it rather than zooming it (a page shows ten); it still drags and zooms on a
    double click."""
    points = np.asarray(polyline, dtype=float).reshape(-1, 2)
    if len(points) < 2:
        return base_map()
    lat, lon = points[:, 0], points[:, 1]
    m = base_map(lat, lon, scroll_wheel_zoom=False, zoom_control=False)
    folium.PolyLine(_coords(lat, lon, drawable(lat, lon, 400)), color=ROUTE_COLOUR, weight=4, opacity=0.9,
                    class_name="suggested-route-line").add_to(m)
    return m


def heatmap(routes: list[tuple[np.ndarray, np.ndarray]]) -> LocalMap:
    """Every route drawn thin and translucent: where they overlap, the colour deepens."""
    if not routes:
        return base_map()
    all_lat = np.concatenate([r[0] for r in routes])
    all_lon = np.concatenate([r[1] for r in routes])
    m = base_map(all_lat, all_lon)
    per_route = max(60, 20_000 // len(routes))
    for lat, lon in routes:
        idx = drawable(lat, lon, per_route)
        folium.PolyLine(_coords(lat, lon, idx), color=ROUTE_COLOUR, weight=3, opacity=0.25,
                        class_name="heat-line").add_to(m)
    return m


def live_map(athletes: list[tuple[float, float, str, str]]) -> LocalMap:
    """Athletes' current positions, one marker each at (lat, lon), with their name and
    activity title as the marker's tooltip, shown as written."""
    if not athletes:
        return base_map()
    lat = np.array([a[0] for a in athletes])
    lon = np.array([a[1] for a in athletes])
    m = base_map(lat, lon)
    _LiveMarkers(athletes).add_to(m)
    # A long name or title wraps inside the tooltip and is cut after three lines.
    m.get_root().header.add_child(folium.Element(
        "<style>.live-tooltip{width:max-content;max-width:18rem;white-space:normal;overflow-wrap:anywhere}"
        ".live-name,.live-title{display:-webkit-box;-webkit-box-orient:vertical;-webkit-line-clamp:3;"
        "overflow:hidden}.live-name{font-weight:600}</style>"))
    return m


class _LiveMarkers(MacroElement):
    """One circle marker per athlete, drawn by one script from JSON data; the tooltip's name
    and title are set as ``textContent``, so no text can become markup or script."""

    _template = Template("""{% macro script(this, kwargs) %}
    {{ this.athletes_json }}.forEach(function (a) {
        var tip = document.createElement("div");
        var name = document.createElement("div");
        name.className = "live-name";
        name.textContent = a[2];
        var title = document.createElement("div");
        title.className = "live-title";
        title.textContent = a[3];
        tip.appendChild(name);
        tip.appendChild(title);
        L.circleMarker([a[0], a[1]], {radius: 8, color: "#ffffff", weight: 2, fill: true,
                                      fillColor: {{ this.colour }}, fillOpacity: 1, className: "live-marker"})
            .bindTooltip(tip, {sticky: true, className: "live-tooltip"})
            .addTo({{ this._parent.get_name() }});
    });
    {% endmacro %}""")

    def __init__(self, athletes: list[tuple[float, float, str, str]]):
        super().__init__()
        self._name = "LiveMarkers"
        self.athletes_json = escape.json_for_script([[round(float(la), 6), round(float(lo), 6), name or "",
                                                      title or ""] for la, lo, name, title in athletes])
        self.colour = escape.js_string(ROUTE_COLOUR)


def _runs(mask: np.ndarray) -> list[np.ndarray]:
    """The indices of each unbroken run of True in ``mask``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [np.arange(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def review_map(lat: np.ndarray, lon: np.ndarray, t: np.ndarray, stretches: list[tuple[float, float]],
               shown: np.ndarray | None = None) -> LocalMap:
    """The route in grey with the suspicious stretches (time ranges) drawn over it in red.
    Only the positions ``shown`` marks are drawn, each unbroken run of them (rows without a
    position neither break a run nor join one) as a line of its own, so that no line
    crosses what is left out."""
    fixed = np.flatnonzero(np.isfinite(np.asarray(lat, dtype=float)) & np.isfinite(np.asarray(lon, dtype=float)))
    keep = np.ones(fixed.size, dtype=bool) if shown is None else np.asarray(shown, dtype=bool)[fixed]
    lat, lon, t = (np.asarray(a, dtype=float)[fixed] for a in (lat, lon, t))
    m = base_map(lat[keep], lon[keep]) if keep.any() else base_map()
    for run in _runs(keep):
        if run.size >= 2:
            idx = run[drawable(lat[run], lon[run])]
            folium.PolyLine(_coords(lat, lon, idx), color="#8a8a94", weight=4, opacity=0.8,
                            class_name="route-line").add_to(m)
    for t0, t1 in stretches:
        for run in _runs(keep & (t >= t0) & (t <= t1)):
            if run.size >= 2:
                idx = run[drawable(lat[run], lon[run])]
                folium.PolyLine(_coords(lat, lon, idx), color="#d7191c", weight=7, opacity=0.95,
                                tooltip=tooltip("suspicious stretch"), class_name="suspicious-line").add_to(m)
    if keep.size and keep[0]:
        folium.CircleMarker([float(lat[0]), float(lon[0])], radius=6, color="#ffffff", weight=2, fill=True,
                            fill_color="#2e9e44", fill_opacity=1, tooltip=tooltip("start"),
                            class_name="start-marker").add_to(m)
    return m
