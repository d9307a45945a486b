"""Finding routes: each completed activity is matched, once, against the routes near it.

- A public activity not held as anomalous *counts*: it joins the route it follows, or
  starts a new one when it follows none.
- Any other activity (followers-only, private, held) may follow an existing route, which
  its own athlete alone is told, but changes nothing of it: no route, figure, polyline or
  name ever comes from it.
- An activity whose visibility, hold or points change (a crop, a late sync) is matched
  again; the route it leaves is recomputed from what still counts, gets another
  representative when its own stops counting (or is deleted, with its account), and is
  deleted when nothing counts.

Each activity is planned with no transaction open (reading its points, shaping and
comparing) and written in one short transaction; a route's figures are recomputed the
same way.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from core import units
from core.activities.lifecycle import default_title
from core.activities.tables import Activity
from core.routes.shape import (
    MIN_SHARED_CELLS,
    TRIM_M,
    Shape,
    cells,
    longest_piece,
    match,
    samples_from_bytes,
    shape_of,
    simplify,
    trim,
)
from core.routes.tables import ROUTE_NAME_MAX_CHARS, Route, RouteActivity, RouteCell
from core.social.privacy import hiding_for, hidings_of, visible_track
from core.storage.base import utcnow
from core.storage.engine import write_transaction
from core.storage.points import stored_track

JOB = "routes"
MAX_CANDIDATES = 50  # routes compared in full per activity, the most alike by cells first
_SECRET = random.SystemRandom()
TRIM_OFFSET_M = 200.0  # how far the trimming circles' centres may sit from an activity's ends
M_PER_DEG = 111_320.0
REQUEUE_MARGIN_DEG = 0.01  # a new route re-matches the unmatched activities that began this near it
FIGURES_FROM = 200  # a route's medians come from its newest counting activities
KIND_WORDS = {"loop": "loop", "out_and_back": "out and back", "one_way": "one way"}


@dataclass
class Plan:
    activity_id: int
    user_id: int
    visibility: str
    held: bool
    point_count: int
    counted: bool
    shape: Shape | None
    route_id: int | None
    direction: int


def counts(activity: Activity) -> bool:
    """Whether an activity may shape public routes."""
    return activity.visibility == "public" and not activity.held


def pending(s: Session, limit: int) -> list[int]:
    """Completed activities the matcher has not seen, then those changed since it saw them."""
    seen = exists().where(RouteActivity.activity_id == Activity.id)
    new = s.scalars(select(Activity.id).where(Activity.status == "completed", ~seen)
                    .order_by(Activity.id).limit(limit)).all()
    if len(new) >= limit:
        return list(new)
    changed = s.scalars(
        select(RouteActivity.activity_id).join(Activity, Activity.id == RouteActivity.activity_id)
        .where(or_(RouteActivity.visibility != Activity.visibility, RouteActivity.held != Activity.held,
                   RouteActivity.points != Activity.point_count))
        .order_by(RouteActivity.activity_id).limit(limit - len(new))).all()
    return list(new) + list(changed)


def candidates(s: Session, keys: set[int]) -> list[int]:
    """Routes that share at least ``MIN_SHARED_CELLS`` of the larger cell set, most shared
    first. The cells are counted first and only the routes that pass join ``routes`` (its
    rows are wide: the shape and polyline come before ``cells``)."""
    if not keys:
        return []
    shared = func.count().label("shared")
    counted = (select(RouteCell.route_id, shared).where(RouteCell.cell.in_(sorted(keys)))
               .group_by(RouteCell.route_id).having(func.count() >= MIN_SHARED_CELLS * len(keys)).subquery())
    rows = s.execute(select(counted.c.route_id, counted.c.shared, Route.cells)
                     .join(Route, Route.id == counted.c.route_id)
                     .order_by(counted.c.shared.desc(), counted.c.route_id)).all()
    ok = [r for r in rows if r.shared >= MIN_SHARED_CELLS * max(len(keys), r.cells)]
    # Most alike first (shared over all cells of both), so that among many routes through
    # the same cells the one of the same size and place is compared, not the oldest.
    ok.sort(key=lambda r: (-r.shared / (len(keys) + r.cells - r.shared), r.route_id))
    return [r.route_id for r in ok[:MAX_CANDIDATES]]


def find_route(s: Session, shape: Shape) -> tuple[int | None, int]:
    """The route the shape follows best (and which way), or (None, 1)."""
    best, best_cover, direction = None, 0.0, 1
    ids = candidates(s, cells(shape.lat, shape.lon))
    rows = s.execute(select(Route.id, Route.shape, Route.kind, RouteActivity.start_lat, RouteActivity.start_lon,
                            RouteActivity.end_lat, RouteActivity.end_lon)
                     .outerjoin(RouteActivity, RouteActivity.activity_id == Route.representative_id)
                     .where(Route.id.in_(ids)))
    for route_id, raw, kind, s_lat, s_lon, e_lat, e_lon in rows:
        lat, lon = samples_from_bytes(raw)
        ends = [e for e in ((s_lat, s_lon), (e_lat, e_lon)) if e[0] is not None]
        found = match(shape, lat, lon, ends, b_closed=kind != "one_way")
        if found is not None and found.coverage > best_cover:
            # Along an out-and-back either way is the way the route goes.
            best, best_cover = route_id, found.coverage
            direction = found.direction if kind != "out_and_back" else 1
    return best, direction


def rematch_athlete(s: Session, user_id: int) -> None:
    """Have the athlete's activities matched again (``pending`` sees their points changed),
    after a change of what they hide (``core.social.privacy``), so the route lines they shape
    leave it out."""
    s.execute(update(RouteActivity).where(RouteActivity.user_id == user_id).values(points=-1))


def public_track(s: Session, activity: Activity):
    """The activity's points as other athletes may see them: routes are drawn and shared from
    these, so nothing its athlete hides (``core.social.privacy``) shapes one."""
    return visible_track(hiding_for(s, None, activity.user_id), stored_track(s, activity), activity.id)


def plan(s: Session, activity: Activity, now: float | None = None) -> Plan:
    """What to write for one activity (reads only)."""
    shape = shape_of(public_track(s, activity), now=now)
    route_id, direction = find_route(s, shape) if shape is not None else (None, 1)
    return Plan(activity.id, activity.user_id, activity.visibility, bool(activity.held), activity.point_count,
                counts(activity), shape, route_id, direction)


def _new_route(s: Session, shape: Shape, activity_id: int) -> int:
    keys = cells(shape.lat, shape.lon)
    route = Route(kind=shape.kind, shape=shape.to_bytes(), representative_id=activity_id, path_m=shape.path_m,
                  turns_per_km=shape.turns_per_km, stops_per_km=shape.stops_per_km, cells=len(keys), polyline=[])
    s.add(route)
    s.flush()
    s.execute(RouteCell.__table__.insert(), [{"cell": k, "route_id": route.id} for k in keys])
    # Activities that followed no route before may follow this one: back to the matcher with
    # those that began near it.
    margin = REQUEUE_MARGIN_DEG
    s.execute(delete(RouteActivity).where(
        RouteActivity.route_id.is_(None), RouteActivity.activity_id != activity_id,
        RouteActivity.start_lat.between(float(shape.lat.min()) - margin, float(shape.lat.max()) + margin),
        RouteActivity.start_lon.between(float(shape.lon.min()) - margin, float(shape.lon.max()) + margin)))
    return route.id


def write(Session: sessionmaker[Session], p: Plan) -> set[int]:
    """Store a plan in one short transaction; returns the routes whose figures changed."""
    touched = set()
    with write_transaction(Session, JOB) as s:
        activity = s.get(Activity, p.activity_id)
        old = s.get(RouteActivity, p.activity_id)
        if old is not None:
            if old.counted and old.route_id is not None:
                touched.add(old.route_id)
            s.delete(old)
            s.flush()
        if activity is None or activity.status != "completed":
            return touched
        route_id = p.route_id
        if route_id is not None and s.get(Route, route_id) is None:
            route_id = None  # deleted since it was planned
        if route_id is None and p.counted and p.shape is not None:
            route_id = _new_route(s, p.shape, p.activity_id)
        start = p.shape.start if p.shape is not None else (None, None)
        end = p.shape.end if p.shape is not None else (None, None)
        s.add(RouteActivity(activity_id=p.activity_id, route_id=route_id, user_id=p.user_id,
                            direction=p.direction, counted=p.counted and route_id is not None,
                            visibility=p.visibility, held=p.held, points=p.point_count,
                            start_lat=start[0], start_lon=start[1], end_lat=end[0], end_lon=end[1],
                            **_offset()))
        if p.counted and route_id is not None:
            touched.add(route_id)
            route = s.get(Route, route_id)
            if route.representative_id == p.activity_id and p.shape is not None:
                # Its points changed (a crop, a late sync): the route is drawn from what is left.
                _set_shape(route, p.shape)
                s.execute(delete(RouteCell).where(RouteCell.route_id == route_id))
                s.execute(RouteCell.__table__.insert(),
                          [{"cell": k, "route_id": route_id} for k in cells(p.shape.lat, p.shape.lon)])
        if touched:
            s.execute(update(Route).where(Route.id.in_(touched)).values(dirty=True))
    return touched


def _set_shape(route: Route, shape: Shape) -> None:
    route.shape, route.kind, route.path_m = shape.to_bytes(), shape.kind, shape.path_m
    route.turns_per_km, route.stops_per_km = shape.turns_per_km, shape.stops_per_km
    route.cells = len(cells(shape.lat, shape.lon))


def _offset() -> dict:
    angle, dist = _SECRET.uniform(0, 2 * math.pi), TRIM_OFFSET_M * math.sqrt(_SECRET.random())
    return {"trim_dx_m": dist * math.cos(angle), "trim_dy_m": dist * math.sin(angle)}


def trim_ends(m) -> list[tuple[tuple[float, float], float]]:
    """The circles a member's polyline keeps out of: around where the activity began and
    ended, each centred a secret offset away (the end's turned a quarter) with the radius
    grown by as much, so that everything within TRIM_M of the door stays out while the cut
    ends of the polyline, equidistant from the centre, no longer point at the door."""
    dx, dy = m.trim_dx_m or 0.0, m.trim_dy_m or 0.0
    radius = TRIM_M + math.hypot(dx, dy)
    out = []
    for lat, lon, (ex, ny) in ((m.start_lat, m.start_lon, (dx, dy)), (m.end_lat, m.end_lon, (-dy, dx))):
        if lat is not None:
            centre = (lat + ny / M_PER_DEG, lon + ex / (M_PER_DEG * max(math.cos(math.radians(lat)), 1e-6)))
            out.append((centre, radius))
    return out


# ---------------------------------------------------------------------------------------
# A route's figures, from what counts


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else None


def _name(titles: list[str], distance_m: float | None, path_m: float, kind: str) -> str:
    named = Counter(t.strip() for t in titles if t and t.strip() and t.strip() not in (default_title("run"),
                                                                                         default_title("ride")))
    if named:
        title, _ = max(named.items(), key=lambda kv: (kv[1], -len(kv[0]), kv[0]))
        return title[:ROUTE_NAME_MAX_CHARS]
    return f"{units.distance(distance_m or path_m, digits=1)} {KIND_WORDS[kind]}"


def _usual_speeds(s: Session, user_ids: list[int]) -> dict[tuple[int, str], float]:
    rows = s.execute(select(Activity.user_id, Activity.sport, func.avg(Activity.avg_speed_mps))
                     .where(Activity.user_id.in_(user_ids), Activity.status == "completed",
                            Activity.avg_speed_mps > 0)
                     .group_by(Activity.user_id, Activity.sport)).all()
    return {(u, sport): float(v) for u, sport, v in rows if v}


def _replacement(s: Session, members: list) -> tuple[int, Shape] | None:
    """A counting member whose shape can stand for the route, newest first."""
    for m in members:
        activity = s.get(Activity, m.activity_id)
        shape = shape_of(public_track(s, activity)) if activity is not None else None
        if shape is not None:
            return activity.id, shape
    return None


def refresh(Session: sessionmaker[Session], route_id: int) -> str:
    """Recompute a route's figures and polyline from its counting activities: "updated",
    "deleted" (nothing counts any more) or "gone"."""
    with Session() as s:
        route = s.get(Route, route_id)
        if route is None:
            return "gone"
        members = s.execute(
            select(RouteActivity.activity_id, RouteActivity.user_id, RouteActivity.start_lat,
                   RouteActivity.start_lon, RouteActivity.end_lat, RouteActivity.end_lon, RouteActivity.trim_dx_m,
                   RouteActivity.trim_dy_m,
                   Activity.sport, Activity.distance_m, Activity.elevation_gain_m, Activity.avg_speed_mps,
                   Activity.start_time, Activity.title)
            .join(Activity, Activity.id == RouteActivity.activity_id)
            .where(RouteActivity.route_id == route_id, RouteActivity.counted)
            .order_by(Activity.start_time.desc(), Activity.id.desc())).all()
        replaced = None
        if members and route.representative_id not in {m.activity_id for m in members}:
            replaced = _replacement(s, members)
            if replaced is None:
                members = []
        if not members:
            with write_transaction(Session, JOB) as w:
                w.execute(delete(Route).where(Route.id == route_id))
            return "deleted"
        if replaced is not None:
            lat, lon = replaced[1].lat, replaced[1].lon
        else:
            lat, lon = samples_from_bytes(route.shape)
        # Figures only from athletes who hide nothing: a stored distance or climb of someone
        # who hides a zone or their ends, read against what others are shown of the
        # activity, would tell how much is hidden. Without any, the route's own line measures it.
        hiding = hidings_of(s, {m.user_id for m in members[:FIGURES_FROM]})
        recent = [m for m in members[:FIGURES_FROM] if not hiding.get(m.user_id)]
        athletes = s.scalar(select(func.count(func.distinct(RouteActivity.user_id)))
                            .where(RouteActivity.route_id == route_id, RouteActivity.counted))
        total = s.scalar(select(func.count()).select_from(RouteActivity)
                         .where(RouteActivity.route_id == route_id, RouteActivity.counted))
        by_sport = Counter(m.sport for m in members)
        speeds = {sport: _median(m.avg_speed_mps for m in recent if m.sport == sport) for sport in by_sport}
        usual = _usual_speeds(s, sorted({m.user_id for m in recent}))
        ratios = [m.avg_speed_mps / usual[(m.user_id, m.sport)] for m in recent
                  if m.avg_speed_mps and usual.get((m.user_id, m.sport))]
        keep = np.ones(lat.size, dtype=bool)
        for m in members:
            for point, radius in trim_ends(m):
                keep &= trim(lat, lon, [point], radius)
        run = longest_piece(lat, lon, keep)
        polyline = simplify(lat[run], lon[run])
        kind = replaced[1].kind if replaced else route.kind
        path_m = replaced[1].path_m if replaced else route.path_m
        distance = _median(m.distance_m for m in recent) if recent else path_m
        gain = _median(m.elevation_gain_m for m in recent)
        values = dict(
            name=_name([m.title for m in members[:FIGURES_FROM]], distance, path_m, kind), polyline=polyline,
            # With every point near someone's door, the route has no map; it is placed by its
            # middle, rounded to about a kilometre.
            start_lat=polyline[0][0] if polyline else round(float(np.mean(lat)), 2),
            start_lon=polyline[0][1] if polyline else round(float(np.mean(lon)), 2),
            distance_m=distance, elevation_gain_m=gain,
            hilliness_m_per_km=gain / (distance / 1000.0) if gain is not None and distance else None,
            pace_ratio=_median(ratios), speeds={k: v for k, v in speeds.items() if v is not None},
            sports=dict(by_sport), athletes=int(athletes or 0), activities=int(total or 0),
            last_done_at=max((m.start_time for m in members if m.start_time), default=None),
            updated_at=utcnow(), dirty=False)
    if replaced is not None:
        shape = replaced[1]
        keys = cells(shape.lat, shape.lon)
        values.update(representative_id=replaced[0], shape=shape.to_bytes(), kind=shape.kind, path_m=shape.path_m,
                      turns_per_km=shape.turns_per_km, stops_per_km=shape.stops_per_km, cells=len(keys))
    with write_transaction(Session, JOB) as w:
        if w.get(Route, route_id) is None:
            return "gone"
        w.execute(update(Route).where(Route.id == route_id).values(**values))
        if replaced is not None:
            w.execute(delete(RouteCell).where(RouteCell.route_id == route_id))
            w.execute(RouteCell.__table__.insert(), [{"cell": k, "route_id": route_id} for k in keys])
    return "updated"


def stale(s: Session, limit: int) -> set[int]:
    """Routes whose counting activities are fewer than their figures say, or whose
    representative is gone (deleted with an account or by their athlete outside the code
    that clears it, ``core.activities.references``: a cascade tells the matcher nothing). A
    scan of all routes: the worker runs it every ten minutes."""
    n = (select(RouteActivity.route_id, func.count().label("n")).where(RouteActivity.counted)
         .group_by(RouteActivity.route_id).subquery())
    found = set(s.scalars(select(Route.id).outerjoin(n, n.c.route_id == Route.id)
                          .where(func.coalesce(n.c.n, 0) != Route.activities).limit(limit)))
    gone = ~select(Activity.id).where(Activity.id == Route.representative_id).exists()
    return found | set(s.scalars(select(Route.id).where(Route.representative_id.is_not(None), gone).limit(limit)))


def match_pending(Session: sessionmaker[Session], limit: int = 50, now: float | None = None,
                  audit: bool = False) -> dict:
    """Match up to ``limit`` pending activities, then recompute the routes they touched and
    any left dirty; with ``audit``, also the routes that lost activities unseen."""
    done = Counter()
    with Session() as s:
        ids = pending(s, limit)
    touched: set[int] = set()
    for activity_id in ids:
        with Session() as s:
            activity = s.get(Activity, activity_id)
            if activity is None:
                continue
            p = plan(s, activity, now=now)
        touched |= write(Session, p)
        done["matched" if p.route_id is not None else ("new" if p.counted and p.shape else "none")] += 1
    with Session() as s:  # dirty (a crash before recomputing), or their representative deleted
        touched |= set(s.scalars(select(Route.id).where(Route.dirty).limit(limit)))
        touched |= set(s.scalars(select(Route.id).where(Route.representative_id.is_(None)).limit(limit)))
        if audit:
            touched |= stale(s, limit)
    for route_id in sorted(touched):
        done["route_" + refresh(Session, route_id)] += 1
    return dict(done)


def route_of(s: Session, activity_id: int) -> RouteActivity | None:
    """How the matcher saw an activity (None before it has)."""
    return s.get(RouteActivity, activity_id)


def routes_near(s: Session, lat: float, lon: float, radius_deg: float = 0.1, limit: int = 50) -> list[Route]:
    """Routes starting within ``radius_deg`` degrees of a point, most done first."""
    return list(s.scalars(select(Route).where(and_(Route.start_lat.between(lat - radius_deg, lat + radius_deg),
                                                   Route.start_lon.between(lon - radius_deg, lon + radius_deg)))
                          .order_by(Route.activities.desc(), Route.id).limit(limit)))


def athlete_routes(s: Session, user_id: int) -> list[tuple[Route, int, datetime | None]]:
    """The routes an athlete has followed (any visibility: for their own eyes), with how
    often and when last."""
    rows = s.execute(select(Route, func.count(), func.max(Activity.start_time))
                     .join(RouteActivity, RouteActivity.route_id == Route.id)
                     .join(Activity, Activity.id == RouteActivity.activity_id)
                     .where(RouteActivity.user_id == user_id)
                     .group_by(Route.id).order_by(func.count().desc(), Route.id)).all()
    return [(r, int(n), last) for r, n, last in rows]


__all__ = ["Plan", "athlete_routes", "counts", "find_route", "match_pending", "pending", "plan", "refresh",
           "route_of", "routes_near", "write"]
