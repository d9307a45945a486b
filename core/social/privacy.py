"""Privacy zones and hidden ends: the parts of an athlete's activities nobody else sees.

An athlete can hide
  * **privacy zones**: a point (home, work) and a radius of 200 m to 1.6 km. What is hidden
    is a circle whose centre lies a secret, random distance (``OFFSET_SHARE`` of the radius)
    and direction away from the point, drawn once for the zone, and whose radius is the
    zone's plus that distance, so it reaches at least the zone's radius beyond the point in
    every direction. Every activity is cut by the same circle: there is no per-activity
    noise for many activities to average out, and the centre that fitting a circle to where
    tracks cross its edge finds is never the point. Past the circle, a route stays hidden
    while the straight street it is on points back at the point (``_pointing``). And an
    activity whose first or last visible point lies near the zone's point shows others no
    map, at random (``map_kept``): routes leave the circle near the point more often than
    far from it, so the visible ends of all of them would average out near it;
  * **the ends** of every activity: the first and last ``hide_ends_m`` metres of the path
    (up to a mile);
  * **the whole map** of every activity.

The athlete's changes (zones added and removed, hidden ends, hidden map) are
``core.social.privacy_settings``'s. After a change, ``core.routes.matching.rematch_athlete`` has the athlete's activities
matched again, so the shared route lines they shape leave out what is now hidden (the
Settings page and the command line call it; this module knows nothing of routes).

Others (followers included) are shown only what is left: ``core.storage.points`` cuts the
points every map, chart, split, GPX file and feed sketch is drawn from, and the figures they
are shown (distance, times, pace, elevation, splits, start time) are worked out from what is
left (``core.social.shown``), so the displayed distance or time says nothing of the hidden part
(the attack that draws circles of the hidden distance around the first and last visible
points). The athlete sees everything. Hidden ends alone do not hide a home from someone who
sees many activities: the first visible points of runs leaving in different directions
surround it. A privacy zone does.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts.tables import User
from core.social.tables import PrivacyZone
from core.tracks.geo import segment_lengths_m
from core.tracks.track import Track

ZONE_MIN_M, ZONE_MAX_M = 200.0, 1600.0
HIDE_ENDS_MAX_M = 1609.0  # one mile
OFFSET_SHARE = (1.2, 1.6)  # the hidden circle's centre lies this many times OFFSET_BASE_M away from the point
OFFSET_BASE_M = 400.0  # or the zone's radius, if larger
METRES_PER_DEGREE = 111_320.0
MAX_STEP_M = 100.0  # the most one step between fixes adds to the path along which ends are hidden
MAP_KEPT_FROM = 1.4  # a visible end this many hidden radii or more from a zone's point always shows
LINE_CLEAR_M = 300.0  # a straight visible leg whose line passes this far or more from a zone's point always shows
LEGS_M = (30.0, 60.0, 120.0, 240.0)  # the visible legs whose lines are checked
STRAIGHT = 0.95
LEG_WINDOW = 200  # points a leg looks ahead at most
POINTING_MAX_M = 1500.0  # how far past a zone's circle a route is followed to where it stops pointing at the point


class PrivacyError(ValueError):
    """A privacy setting that cannot be stored; the message says why."""


@dataclass(frozen=True)
class Hiding:
    """What of one athlete's activities others do not see."""

    # Hidden circles: (lat, lon, radius_m), followed by the zone's own point (lat, lon) when
    # activities leaving the circle near it are to show no map at random (``map_kept``).
    circles: tuple[tuple[float, ...], ...] = ()
    ends_m: float = 0.0
    whole_map: bool = False

    def __bool__(self) -> bool:
        return bool(self.circles) or self.ends_m > 0 or self.whole_map


NOTHING = Hiding()


# ---------------------------------------------------------------------------------------
# Settings


def _offset(lat: float, lon: float, metres: float, bearing: float) -> tuple[float, float]:
    north, east = metres * math.cos(bearing), metres * math.sin(bearing)
    lon = lon + east / (METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 1e-6))
    return lat + north / METRES_PER_DEGREE, (lon + 180.0) % 360.0 - 180.0


def hidden_circle(lat: float, lon: float, radius_m: float, rng: random.Random) -> tuple[float, float, float]:
    """The circle hidden for a zone around (``lat``, ``lon``): its centre a random distance
    away in a random direction (``OFFSET_SHARE`` times the zone's radius or ``OFFSET_BASE_M``,
    whichever is larger), its radius the zone's plus that distance (so it covers the zone
    whatever the direction)."""
    away = max(radius_m, OFFSET_BASE_M) * rng.uniform(*OFFSET_SHARE)
    centre = _offset(lat, lon, away, rng.uniform(0.0, 2 * math.pi))
    return centre[0], centre[1], radius_m + away


def hidden_ends_m(settings: dict | None) -> float:
    """The hidden ends an athlete's settings hold, in metres (0 when unset or unreadable)."""
    try:
        metres = float((settings or {}).get("hide_ends_m", 0.0))
    except (TypeError, ValueError):
        return 0.0
    return min(max(metres, 0.0), HIDE_ENDS_MAX_M) if math.isfinite(metres) else 0.0


def hidings_of(s: Session, user_ids) -> dict[int, Hiding]:
    """What each athlete hides (``NOTHING`` for those who hide nothing), in two queries."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    circles: dict[int, list] = {}
    for u, lat, lon, r, plat, plon in s.execute(
            select(PrivacyZone.user_id, PrivacyZone.hidden_lat, PrivacyZone.hidden_lon, PrivacyZone.hidden_radius_m,
                   PrivacyZone.lat, PrivacyZone.lon).where(PrivacyZone.user_id.in_(ids)).order_by(PrivacyZone.id)):
        circles.setdefault(u, []).append((float(lat), float(lon), float(r), float(plat), float(plon)))
    out = {}
    for u, settings in s.execute(select(User.id, User.settings).where(User.id.in_(ids))):
        out[u] = Hiding(tuple(circles.get(u, ())), hidden_ends_m(settings), bool((settings or {}).get("hide_map")))
    return {u: out.get(u, NOTHING) for u in ids}


def hiding_for(s: Session, viewer_id: int | None, owner_id: int) -> Hiding:
    """What ``viewer_id`` may not see of ``owner_id``'s activities: nothing for the owner."""
    if viewer_id is not None and viewer_id == owner_id:
        return NOTHING
    return hidings_of(s, [owner_id])[owner_id]


# ---------------------------------------------------------------------------------------
# Cutting points


def _north_east(lat: np.ndarray, lon: np.ndarray, clat: float, clon: float) -> tuple[np.ndarray, np.ndarray]:
    """Metres north and east of (``clat``, ``clon``), across the antimeridian too."""
    north = (np.asarray(lat, dtype=float) - clat) * METRES_PER_DEGREE
    east = ((np.asarray(lon, dtype=float) - clon + 180.0) % 360.0 - 180.0) * METRES_PER_DEGREE * math.cos(
        math.radians(clat))
    return north, east


def _metres_from(lat: np.ndarray, lon: np.ndarray, clat: float, clon: float) -> np.ndarray:
    return np.hypot(*_north_east(lat, lon, clat, clon))


def _circle_cut(away: np.ndarray, radius: float) -> np.ndarray:
    """Which points a hidden circle hides, given each one's distance from its centre.

    Every point inside, and, for an activity that starts inside, everything up to its *last*
    point inside before it turns for home (its point farthest from the centre); for one that
    ends inside, everything from its *first* point inside after that. Cutting at the first
    point outside would not do: a route wandering out of any area leaves it, on average,
    where it started (the mean of such first exits is the home, whatever the area's shape),
    so averaging where many activities appear would find the home. Where a route leaves for
    good is spread over the whole edge whatever the home, so the mean of those points is the
    circle's centre, which lies well away from the home."""
    inside = away < radius
    if not inside.any():
        return inside
    cut = inside.copy()
    turn = int(np.argmax(away))
    if inside[0]:
        cut[:int(np.flatnonzero(inside[:turn + 1])[-1]) + 1] = True
    if inside[-1]:
        cut[turn + int(np.flatnonzero(inside[turn:])[0]):] = True
    return cut


def _draw(circle: tuple[float, ...], key) -> float:
    """A number in [0, 1) fixed for one activity (``key``) and one zone, that nobody without
    the zone's secret hidden circle can work out."""
    secret = repr(tuple(float(x) for x in circle)).encode()[:64]
    if isinstance(key, (int, np.integer)):  # an id, whatever integer type it comes as
        message = int(key).to_bytes(16, "big", signed=True)
    else:
        message = repr(key).encode()
    digest = hashlib.blake2b(message, key=secret, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64


def _line_misses(north: np.ndarray, east: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """For each index in ``starts`` of a path (metres north and east of a zone's point): how
    near to the point the lines along the straight ones of the ``LEGS_M`` of path that begin
    there pass, drawn back (inf where none is straight, or the path is too short). A leg
    looks at most ``LEG_WINDOW`` points ahead."""
    along = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(north), np.diff(east)))])
    nearest = np.full(len(starts), np.inf)
    limit = np.minimum(len(along), starts + LEG_WINDOW)
    for leg in LEGS_M:
        k = np.searchsorted(along, along[starts] + leg)
        ok = k < limit
        k = np.where(ok, k, starts)
        dn, de = north[k] - north[starts], east[k] - east[starts]
        chord = np.hypot(dn, de)
        ok &= (chord > 0) & (chord >= STRAIGHT * (along[k] - along[starts]))
        miss = np.abs(dn * east[starts] - de * north[starts]) / np.where(chord > 0, chord, 1.0)
        nearest = np.where(ok, np.minimum(nearest, miss), nearest)
    return nearest


def _pointing(la: np.ndarray, lo: np.ndarray, hide: np.ndarray, plat: float, plon: float,
              start: bool, end: bool) -> np.ndarray:
    """The visible points, next to a cut end, to hide as well: while the straight leg that
    begins there would, drawn back, pass within ``LINE_CLEAR_M`` of the zone's point (a
    street through the home points at it), up to ``POINTING_MAX_M`` along the path."""
    more = np.zeros(len(la), dtype=bool)
    shown = np.flatnonzero(~hide)
    for wanted, order in ((start, shown), (end, shown[::-1])):
        if not wanted or order.size < 2:
            continue
        north, east = _north_east(la[order], lo[order], plat, plon)
        along = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(north), np.diff(east)))])
        reach = np.arange(int(np.searchsorted(along, POINTING_MAX_M, side="right")))
        reach = reach[reach < len(order) - 1]
        clear = _line_misses(north, east, reach) >= LINE_CLEAR_M
        k = int(np.argmax(clear)) if clear.any() else len(reach)
        more[order[:k]] = True
    return more


def map_kept(circle: tuple[float, ...], ends: list[tuple[float, float]], key, legs=()) -> bool:
    """Whether an activity cut by this zone's circle shows others its map, given the visible
    ends the circle cut it to (its first visible point if it started inside, its last if it
    ended inside). An end lying ``d`` from the zone's point, closer than ``MAP_KEPT_FROM``
    hidden radii, keeps the map with probability ``d`` over that, drawn once per activity
    (``key``, its id) and zone.

    Why: routes leave any area around where they started more often near it than far from
    it (a route wandering out of an area leaves it, on average, where it started; even
    straight ones leave an off-centre circle on average halfway between its centre and the
    start). So the mean of many activities' visible ends lies near the zone's point, however
    the circle is drawn. Showing each end with a probability that grows with its distance
    from the point evens that out: what is shown leaves the circle around its whole edge,
    and its mean moves to the circle's secret centre. A visible leg (``legs``: the visible
    path from each cut end) whose line still passes near the point, past ``_pointing``'s
    reach, lowers the chance the same way. The cost: half to two thirds of the activities
    that start or end in a 400 m zone show others no map (``python -m bench.privacy_attack``
    prints the share). A circle without the zone's point keeps every map."""
    if len(circle) < 5 or not ends or MAP_KEPT_FROM <= 0:
        return True
    _, _, radius, plat, plon = circle[:5]
    reach = MAP_KEPT_FROM * radius
    chance = 1.0
    for lat, lon in ends:
        chance *= min(1.0, float(_metres_from(np.array([lat]), np.array([lon]), plat, plon)[0]) / reach)
    for lat, lon in legs:  # a straight leg drawn back through the point would point at it
        north, east = _north_east(lat, lon, plat, plon)
        chance *= min(1.0, float(_line_misses(north, east, np.zeros(1, dtype=int))[0]) / LINE_CLEAR_M)
    return _draw(circle, key) < chance


def hidden_mask(hiding: Hiding, lat: np.ndarray, lon: np.ndarray, key=None, draw: bool = True) -> np.ndarray:
    """Which of these positions, in recorded order, others may not see. A point without a
    position goes with the positioned point before it (the first ones with the one after).

    ``key`` names the activity (its id) for ``map_kept``'s draw, so that every surface and
    both storage tiers hide the same; without one, the first position stands for it. Without
    ``draw``, the cut alone (what a map kept would show: its figures are shown either way)."""
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    n = len(lat)
    if hiding.whole_map:
        return np.ones(n, dtype=bool)
    if not hiding or n == 0:
        return np.zeros(n, dtype=bool)
    fixed = np.isfinite(lat) & np.isfinite(lon)
    idx = np.flatnonzero(fixed)
    if idx.size == 0:
        return np.zeros(n, dtype=bool)
    la, lo = lat[idx], lon[idx]
    hide = np.zeros(idx.size, dtype=bool)
    cut_ends = []
    for circle in hiding.circles:
        clat, clon, radius = circle[:3]
        cut = _circle_cut(_metres_from(la, lo, clat, clon), radius)
        hide |= cut
        cut_ends.append((circle, bool(cut[0]), bool(cut[-1])))
    if hiding.ends_m > 0:
        # A step longer than any fix-to-fix move (a cold-start jump, a glitch) counts as
        # MAX_STEP_M: a fix kilometres off at the start must not use up the hidden end.
        steps = np.minimum(segment_lengths_m(la, lo), MAX_STEP_M)
        along = np.concatenate([[0.0], np.cumsum(steps)])
        hide |= (along < hiding.ends_m) | (along[-1] - along < hiding.ends_m)
    for circle, start, end in cut_ends:  # past the straight legs whose lines point at the zone's point
        if len(circle) >= 5 and (start or end):
            hide |= _pointing(la, lo, hide, circle[3], circle[4], start, end)
    shown = np.flatnonzero(~hide)
    if shown.size and draw:
        first, last = (la[shown[0]], lo[shown[0]]), (la[shown[-1]], lo[shown[-1]])
        if key is None:
            key = (round(float(la[0]), 6), round(float(lo[0]), 6))
        head = shown[:LEG_WINDOW]  # the visible path from its first point, and back from its last
        tail = shown[::-1][:LEG_WINDOW]
        for circle, start, end in cut_ends:
            ends = ([first] if start else []) + ([last] if end else [])
            legs = ([(la[head], lo[head])] if start else []) + ([(la[tail], lo[tail])] if end else [])
            if not map_kept(circle, ends, key, legs):
                return np.ones(n, dtype=bool)
    # Each point takes the state of the last positioned point at or before it.
    owner = np.maximum(np.searchsorted(idx, np.arange(n), side="right") - 1, 0)
    return hide[owner]


def kept_mask(hiding: Hiding, lat: np.ndarray, lon: np.ndarray, key=None, draw: bool = True) -> np.ndarray:
    """Which points others see: none at all when fewer than two positions would be left (a
    lone point is no map, and would only mark a spot)."""
    keep = ~hidden_mask(hiding, lat, lon, key, draw)
    if int((keep & np.isfinite(np.asarray(lat, dtype=float))).sum()) < 2:
        keep[:] = False
    return keep


def visible_track(hiding: Hiding, track: Track, key=None, draw: bool = True) -> Track:
    """The track as others may see it: hidden points taken out (``key``: the activity's id;
    ``draw``: see ``hidden_mask``)."""
    if not hiding:
        return track
    return track.take(kept_mask(hiding, track.lat, track.lon, key, draw))


def visible_positions(hiding: Hiding, lat: np.ndarray, lon: np.ndarray,
                      key=None) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in recorded order) as others may see them (``key``: the activity's id)."""
    if not hiding:
        return lat, lon
    keep = kept_mask(hiding, lat, lon, key)
    return lat[keep], lon[keep]


# ---------------------------------------------------------------------------------------
# The distance boards add up (what is shown: ``core.social.shown``)


def plain(hiding: Hiding) -> bool:
    """Whether others are shown an activity's own distance whatever its points: nothing is
    hidden, or the whole map is, where the figures locate nothing."""
    return not hiding or hiding.whole_map
