"""The published attacks on privacy zones, run against what others are shown.

An attacker sees 20 activities that start and end at one home, as another athlete sees them
(the visible points with their times, and the displayed distance), and estimates the home:

* ``edges``: fit a circle to where the tracks cross the hidden area's edge (the first and
  last visible points) and take its centre (Hassan et al., USENIX Security 2018);
* ``distances``: the hidden distance (the displayed distance less the visible path) is the
  length of the two hidden stretches, from the home to the first visible point and from the
  last one back; as neither is shorter than the straight line, the home lies inside the
  ellipse with those two points as foci and that length as its major axis. Take the point
  closest to the edge of every activity's ellipse, a point outside one (impossible) weighing
  more (after Dhondt et al., CCS 2022, who measure the stretches along the street map; the
  ellipse needs no map, nor a guess at how the hidden distance splits between the ends);
* ``centroid``: the mean of the first and last visible points;
* ``lines``: extend each activity's first and last visible legs (their first and last
  120 m, when straight) back into the hidden area and take the point nearest to most of
  these lines (least squares, reweighted to let the lines that miss go). Streets through a
  home point at it. Not one of the published methods, and the hiding does not hold against
  it on straight streets (``python -m bench.privacy_attack``).

``trial`` runs all three against one simulated athlete under a hiding scheme: ``"zone"``
is ``core.social.privacy`` (a secretly offset circle, maps kept at random by how near the
zone's point they leave it; figures from what is left), and ``"naive"`` a circle centred on
the home with the full figures displayed, which the attacks are known to beat; the naive
scheme shows that they work.

Two families of routes, written apart: ``wander`` (``outing``: blocks of 80 to 350 m with a
turn at every other one, home by the grid), against which the hiding's numbers were chosen,
and ``streets`` (``errand``: long straight streets, out and back the same way or round a
loop), which they were not chosen on. Offline only: the worker and the pages never import
this. ``python -m bench.privacy_attack`` prints the table.
"""

from __future__ import annotations

import math
import random

import numpy as np
from scipy.optimize import least_squares

from core.social.privacy import METRES_PER_DEGREE, Hiding, hidden_circle, visible_track
from core.social.shown import figures_of_track
from core.tracks.geo import track_length_m
from core.tracks.track import Track

METHODS = ("edges", "distances", "centroid", "lines")
PUBLISHED = ("edges", "distances", "centroid")
LEG_M = 120.0  # the visible leg a line is drawn along
STRAIGHT = 0.95  # a leg counts when its ends are this share of its path apart
SCHEMES = ("zone", "naive")
ACTIVITIES = 20
CLOSE_M = 200.0  # an estimate within this of the home found it


def _xy(lat, lon, lat0, lon0):
    return ((np.asarray(lon) - lon0) * METRES_PER_DEGREE * math.cos(math.radians(lat0)),
            (np.asarray(lat) - lat0) * METRES_PER_DEGREE)


def _latlon(x, y, lat0, lon0):
    return lat0 + y / METRES_PER_DEGREE, lon0 + x / (METRES_PER_DEGREE * math.cos(math.radians(lat0)))


def outing(rng: random.Random, lat0: float, lon0: float, start_t: float) -> Track:
    """A run from the home and back along streets: out on a heading with right-angle turns
    every block, then home again by the blocks that close the gap; a fix every 5 s at
    about 3 m/s with 4 m of GPS noise."""
    speed, step_s = rng.uniform(2.6, 3.4), 5.0
    heading = rng.uniform(0, 2 * math.pi)
    x = y = 0.0
    xs, ys = [0.0], [0.0]

    def walk(dx, dy):
        nonlocal x, y
        metres = math.hypot(dx, dy)
        for k in range(1, max(1, int(metres / (speed * step_s))) + 1):
            f = min(1.0, k * speed * step_s / metres) if metres else 1.0
            xs.append(x + dx * f)
            ys.append(y + dy * f)
        x, y = x + dx, y + dy

    out = rng.uniform(2500, 5000)
    while out > 0:
        block = min(out, rng.uniform(80, 350))
        walk(block * math.cos(heading), block * math.sin(heading))
        out -= block
        heading += rng.choice((-math.pi / 2, 0.0, 0.0, math.pi / 2)) + rng.gauss(0, 0.08)
    while math.hypot(x, y) > 1.0:  # home by the grid: one leg along each axis, nearest first
        if abs(x) > 1.0 and (abs(x) <= abs(y) or abs(y) <= 1.0):
            walk(-x, 0.0)
        else:
            walk(0.0, -y)
    n = len(xs)
    noise = np.array([[rng.gauss(0, 4.0), rng.gauss(0, 4.0)] for _ in range(n)])
    lat, lon = _latlon(np.array(xs) + noise[:, 0], np.array(ys) + noise[:, 1], lat0, lon0)
    t = start_t + step_s * np.arange(n)
    nan = np.full(n, np.nan)
    return Track(t, lat, lon, np.full(n, 50.0), np.full(n, 5.0), nan, nan, sport="run")


def errand(rng: random.Random, lat0: float, lon0: float, start_t: float) -> Track:
    """A run along a town's straight streets: 2 to 6 km out by blocks of 150 to 900 m, a
    turn at about one corner in three, then back the same way or round by the two streets
    that close the loop; a fix every 5 s at 2.4 to 3.6 m/s with 4 m of GPS noise."""
    speed, step_s = rng.uniform(2.4, 3.6), 5.0
    grid = rng.uniform(0.0, math.pi / 2)
    heading = grid + rng.randrange(4) * math.pi / 2
    legs, x, y = [], 0.0, 0.0
    left = rng.uniform(2000, 6000)
    while left > 0:
        metres = min(left, rng.uniform(150, 900))
        legs.append((metres, heading))
        x, y, left = x + metres * math.cos(heading), y + metres * math.sin(heading), left - metres
        if rng.random() < 0.35:
            heading += rng.choice((-1, 1)) * math.pi / 2
    if rng.random() < 0.5:
        legs += [(metres, heading + math.pi) for metres, heading in reversed(legs)]
    else:
        along = x * math.cos(grid) + y * math.sin(grid)
        across = -x * math.sin(grid) + y * math.cos(grid)
        legs += [(abs(across), grid + (math.pi / 2 if across < 0 else -math.pi / 2)),
                 (abs(along), grid + (0.0 if along < 0 else math.pi))]
    xs, ys = [0.0], [0.0]
    for metres, heading in legs:
        steps = max(1, int(metres / (speed * step_s)))
        x0, y0 = xs[-1], ys[-1]
        for k in range(1, steps + 1):
            xs.append(x0 + metres * k / steps * math.cos(heading))
            ys.append(y0 + metres * k / steps * math.sin(heading))
    n = len(xs)
    lat, lon = _latlon(np.array(xs) + np.array([rng.gauss(0, 4.0) for _ in range(n)]),
                       np.array(ys) + np.array([rng.gauss(0, 4.0) for _ in range(n)]), lat0, lon0)
    nan = np.full(n, np.nan)
    return Track(start_t + step_s * np.arange(n), lat, lon, np.full(n, 50.0), np.full(n, 5.0), nan, nan, sport="run")


FAMILIES = {"wander": outing, "streets": errand}


def _circle_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The centre of the least-squares circle through the points (Kåsa's algebraic fit)."""
    a = np.column_stack([2 * x, 2 * y, np.ones_like(x)])
    (cx, cy, _), *_ = np.linalg.lstsq(a, x * x + y * y, rcond=None)
    return float(cx), float(cy)


OUTSIDE_WEIGHT = 10.0  # a point outside an activity's ellipse counts this much more than one inside


def _closest_to_ellipses(starts: np.ndarray, ends: np.ndarray, hidden: np.ndarray) -> tuple[float, float]:
    """The point whose distances to each activity's first and last visible points add up
    closest to its hidden distance (robust least squares: a few winding stretches, much
    longer than the straight line, do not pull it away)."""
    def misfit(p):
        d = np.hypot(*(starts - p).T) + np.hypot(*(ends - p).T) - hidden
        return np.where(d > 0, OUTSIDE_WEIGHT * d, d)

    centre = np.vstack([starts, ends]).mean(axis=0)
    fit = least_squares(misfit, x0=centre, loss="soft_l1", f_scale=100.0)
    return float(fit.x[0]), float(fit.x[1])


def _leg(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The line along the first ``LEG_M`` of a visible path (point, unit direction), or
    None when that stretch is not straight."""
    steps = np.hypot(np.diff(x), np.diff(y))
    along = np.concatenate([[0.0], np.cumsum(steps)])
    k = int(np.searchsorted(along, LEG_M))
    if k >= len(x) or along[k] < 0.8 * LEG_M:
        return None
    chord = np.array([x[k] - x[0], y[k] - y[0]])
    if np.hypot(*chord) < STRAIGHT * along[k]:
        return None
    return np.array([x[0], y[0]]), chord / np.hypot(*chord)


def _nearest_to_lines(lines: list[tuple[np.ndarray, np.ndarray]], start: np.ndarray) -> tuple[float, float]:
    """The point nearest to most of the lines: least squares over their perpendicular
    distances, reweighted (Cauchy, 100 m) so that lines far from it count less."""
    at = start
    for _ in range(20):
        a, b = np.zeros((2, 2)), np.zeros(2)
        for p, d in lines:
            proj = np.eye(2) - np.outer(d, d)
            off = proj @ (at - p)
            w = 1.0 / (1.0 + (np.hypot(*off) / 100.0) ** 2)
            a += w * proj
            b += w * proj @ p
        try:
            at = np.linalg.solve(a, b)
        except np.linalg.LinAlgError:
            break
    return float(at[0]), float(at[1])


def trial(seed: int, radius_m: float, scheme: str, activities: int = ACTIVITIES,
          family: str = "wander") -> dict[str, float]:
    """How far (metres) each method's estimate lands from the home of one simulated athlete,
    and (``maps``) the share of the activities that showed a map."""
    rng = random.Random(seed)
    route = FAMILIES[family]
    lat0, lon0 = rng.uniform(-50, 60), rng.uniform(-120, 150)
    if scheme == "zone":
        hiding = Hiding((hidden_circle(lat0, lon0, radius_m, rng) + (lat0, lon0),))
    elif scheme == "naive":
        hiding = Hiding(((lat0, lon0, radius_m),))
    else:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}")
    ends, hidden, maps, lines = [], [], 0, []  # ends: first and last visible point of each
    for k in range(activities):
        track = route(rng, lat0, lon0, 1.7e9 + 86400 * k)
        seen = visible_track(hiding, track, key=(seed, k))
        fixed = np.isfinite(seen.lat)
        if fixed.sum() < 2:
            continue
        maps += 1
        lat, lon = seen.lat[fixed], seen.lon[fixed]
        shown = figures_of_track(seen if scheme == "zone" else track)["distance_m"]
        gap = max(0.0, float(shown) - track_length_m(lat, lon))
        ends += [(lat[0], lon[0]), (lat[-1], lon[-1])]
        hidden.append(gap)
        px, py = _xy(lat, lon, lat0, lon0)
        lines += [leg for leg in (_leg(px, py), _leg(px[::-1], py[::-1])) if leg is not None]
    if len(ends) < 3:
        return {**dict.fromkeys(METHODS, math.inf), "maps": maps / activities}
    x, y = _xy([p[0] for p in ends], [p[1] for p in ends], lat0, lon0)
    pairs = np.column_stack([x, y]).reshape(-1, 2, 2)  # (activity, first or last, xy)
    estimates = {"edges": _circle_fit(x, y),
                 "distances": _closest_to_ellipses(pairs[:, 0], pairs[:, 1], np.array(hidden)),
                 "centroid": (float(x.mean()), float(y.mean())),
                 "lines": (_nearest_to_lines(lines, np.array([x.mean(), y.mean()])) if len(lines) >= 3
                           else (math.inf, math.inf))}
    return {**{m: math.hypot(*estimates[m]) for m in METHODS}, "maps": maps / activities}


def run(radii=(200.0, 400.0, 800.0, 1600.0), trials: int = 100, seed: int = 0,
        schemes=SCHEMES, families=tuple(FAMILIES)) -> list[dict]:
    """Per family, scheme, radius and method: the share of trials whose estimate is within
    ``CLOSE_M`` of the home, the median error, and the share of activities showing a map."""
    rows = []
    for family in families:
        for scheme in schemes:
            for radius in radii:
                errors = [trial(seed * 100_003 + k, radius, scheme, family=family) for k in range(trials)]
                maps = float(np.mean([x["maps"] for x in errors]))
                for m in METHODS:
                    e = np.array([x[m] for x in errors])
                    rows.append({"family": family, "scheme": scheme, "radius_m": radius, "method": m,
                                 "trials": trials, "found_share": float((e <= CLOSE_M).mean()),
                                 "median_error_m": float(np.median(e)), "maps_shown": maps})
    return rows
