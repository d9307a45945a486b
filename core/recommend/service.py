"""Route suggestions from the database: what the model is trained on, the worker's training
and precomputed lists, serving with fresh filtering, and the athletes' signals and settings.

Privacy, by construction:
- routes exist only from public activities not held as anomalous (``core.routes``);
- the model learns others' completions from those same activities only; an athlete's own
  private and followers-only activities shape their own profile and nothing else;
- what is shown of a route is its polyline, trimmed of every start and end, and figures.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.pseudonyms import Pseudonyms
from core.accounts.tables import User
from core.activities.tables import SPORTS, Activity
from core.recommend.model import Catalogue, Event, Profile, Recommender, Suggestion
from core.recommend.tables import (
    SIGNALS,
    TERRAINS,
    DiscoverySettings,
    RecommenderState,
    RouteSignal,
    RouteSuggestion,
)
from core.routes.tables import Route, RouteActivity
from core.social.tables import Friend, Kudos
from core.storage.base import utcnow
from core.storage.engine import write_transaction

JOB = "recommendations"
STATE = "routes"
KEEP = 50  # suggestions precomputed per athlete
ACTIVE_DAYS = 120  # athletes with an activity this recent get precomputed suggestions
VALIDATION_DAYS = 28
ON_THE_FLY_MAX = 5000  # routes read for a list computed on the spot (the nearest box of them)


class SignalError(ValueError):
    """A signal the athlete may not give (a rating of a route they never completed, a
    rating outside 1-5, an unknown route)."""


# ---------------------------------------------------------------------------------------
# What the model reads


def _catalogue(rows) -> Catalogue:
    runs = [(r.sports or {}).get("run", 0) / max(sum((r.sports or {}).values()), 1) for r in rows]
    return Catalogue(np.array([r.id for r in rows], dtype=np.int64),
                     np.array([r.start_lat for r in rows], dtype=float),
                     np.array([r.start_lon for r in rows], dtype=float),
                     np.array([r.distance_m or r.path_m for r in rows], dtype=float),
                     np.array([r.hilliness_m_per_km or 0.0 for r in rows], dtype=float),
                     np.array(runs, dtype=float), [r.name for r in rows])


def catalogue(s: Session) -> Catalogue:
    return _catalogue(s.execute(select(Route.id, Route.start_lat, Route.start_lon, Route.distance_m, Route.path_m,
                                       Route.hilliness_m_per_km, Route.sports, Route.name)
                                .where(Route.start_lat.is_not(None)).order_by(Route.id)).all())


def _ts(dt: datetime | None) -> float:
    return dt.timestamp() if dt is not None else 0.0


def events(s: Session) -> list[Event]:
    """Everyone's completions of routes in public activities, kudos given to them, and the
    athletes' ratings, saves and dismissals."""
    out = [Event(u, r, _ts(t), "done") for u, r, t in s.execute(
        select(RouteActivity.user_id, RouteActivity.route_id, Activity.start_time)
        .join(Activity, Activity.id == RouteActivity.activity_id)
        .where(RouteActivity.counted, RouteActivity.route_id.is_not(None)))]
    out += [Event(u, r, _ts(t), "kudos") for u, r, t in s.execute(
        select(Kudos.user_id, RouteActivity.route_id, Kudos.created_at)
        .join(RouteActivity, RouteActivity.activity_id == Kudos.activity_id)
        .where(RouteActivity.counted, RouteActivity.route_id.is_not(None)))]
    out += [Event(u, r, _ts(t), kind, v) for u, r, kind, v, t in s.execute(
        select(RouteSignal.user_id, RouteSignal.route_id, RouteSignal.kind, RouteSignal.value, RouteSignal.at))]
    return sorted(out, key=lambda e: e.at)


def follows(s: Session) -> dict[int, set[int]]:
    out = defaultdict(set)
    for u, f in s.execute(select(Friend.user_id, Friend.friend_id)):
        out[u].add(f)
    return dict(out)


def settings_of(s: Session, user_id: int) -> DiscoverySettings | None:
    return s.get(DiscoverySettings, user_id)


def profile(s: Session, user_id: int) -> Profile | None:
    """The athlete as the recommender sees them: from their own activities (any visibility:
    it is theirs), else from what they stated; None with neither a history nor an area."""
    stated = settings_of(s, user_id)
    own = s.execute(select(Activity.sport, Activity.distance_m, Activity.elevation_gain_m)
                    .where(Activity.user_id == user_id, Activity.status == "completed")).all()
    starts = s.execute(select(RouteActivity.start_lat, RouteActivity.start_lon)
                       .where(RouteActivity.user_id == user_id, RouteActivity.start_lat.is_not(None))).all()
    done = Counter(r for (r,) in s.execute(select(RouteActivity.route_id).where(
        RouteActivity.user_id == user_id, RouteActivity.route_id.is_not(None))))
    marked = {r for (r,) in s.execute(select(RouteSignal.route_id).where(
        RouteSignal.user_id == user_id, RouteSignal.kind.in_(("dismiss", "save"))))}
    sport = (stated.sport if stated and stated.sport else
             Counter(a.sport for a in own).most_common(1)[0][0] if own else "run")
    if starts:
        lat, lon = statistics.median(a for a, _ in starts), statistics.median(b for _, b in starts)
    elif stated is not None and stated.area_lat is not None:
        lat, lon = stated.area_lat, stated.area_lon
    else:
        return None
    mine = [a for a in own if a.sport == sport and a.distance_m]
    distance = statistics.median(a.distance_m for a in mine) if mine else None
    climbs = [a.elevation_gain_m / (a.distance_m / 1000.0) for a in mine if a.elevation_gain_m is not None]
    if stated is not None and stated.usual_distance_m:
        distance = stated.usual_distance_m
    return Profile(user_id, sport, float(lat), float(lon), distance_m=distance,
                   climb_m_per_km=statistics.median(climbs) if climbs else None,
                   terrain=stated.terrain if stated is not None else "any",
                   stated=not own and stated is not None, done=dict(done), dismissed=marked)


# ---------------------------------------------------------------------------------------
# Training (the worker, ``python -m core jobs run recommendations``)


def _state(s: Session) -> dict:
    row = s.get(RecommenderState, STATE)
    return dict(row.value) if row is not None else {}


def train(Session: sessionmaker[Session], now: datetime | None = None, factors=None) -> dict:
    """Choose and fit the model on everything stored, then precompute each active
    athlete's suggestions (one short write per athlete). ``factors``: the collaborative part
    is that factor model of implicit feedback (Spark's ALS, ``core.spark.recommend.als``)
    instead of one chosen among Surprise's."""
    from core.recommend.evaluation import COLLABORATIVE, choose

    now = now or utcnow()
    with Session() as s:
        cat, evs, graph = catalogue(s), events(s), follows(s)
        if not len(cat):
            return {"routes": 0}
        sports, starts = {}, {}
        active = s.scalars(select(Activity.user_id).where(
            Activity.status == "completed", Activity.start_time >= now - timedelta(days=ACTIVE_DAYS)).distinct()).all()
        stated = s.scalars(select(DiscoverySettings.user_id)).all()
        profiles = {u: p for u in sorted(set(active) | set(stated)) if (p := profile(s, u)) is not None}
    # The model sees pseudonyms only (core.accounts.pseudonyms): athletes' ids stay here.
    alias = Pseudonyms()
    evs = [replace(e, user=alias(e.user)) for e in evs]
    graph = {alias(u): {alias(f) for f in fs} for u, fs in graph.items()}
    seen = {u: replace(p, user=alias(u)) for u, p in profiles.items()}
    for p in seen.values():
        sports[p.user], starts[p.user] = p.sport, (p.lat, p.lon)
    chosen = choose(cat, evs, sports, starts, (now - timedelta(days=VALIDATION_DAYS)).timestamp(),
                    now.timestamp(), graph, ("als",) if factors else COLLABORATIVE, factors)
    rec = Recommender(cat, evs, collaborative=chosen["collaborative"], blend=chosen["blend"], follows=graph,
                      factors=factors)
    written = 0
    for u, p in seen.items():
        store(Session, u, rec.rank(p, KEEP))
        written += 1
    with write_transaction(Session, JOB) as w:
        row = w.get(RecommenderState, STATE) or RecommenderState(name=STATE)
        row.value = {**chosen, "routes": len(cat), "events": len(evs)}
        row.trained_at = now
        w.add(row)
    return {"routes": len(cat), "events": len(evs), "athletes": written, "collaborative": chosen["collaborative"],
            "validation_athletes": chosen.get("validation_athletes", 0)}


def store(Session: sessionmaker[Session], user_id: int, suggestions: list[Suggestion]) -> None:
    """Replace the athlete's stored suggestions (nothing when the account was deleted meanwhile)."""
    with write_transaction(Session, JOB) as w:
        if w.get(User, user_id) is None:
            return
        w.execute(delete(RouteSuggestion).where(RouteSuggestion.user_id == user_id))
        if suggestions:
            w.execute(RouteSuggestion.__table__.insert(), [
                {"user_id": user_id, "route_id": x.route, "rank": i + 1, "score": x.score,
                 "source": x.source, "reason": x.reason[:200],
                 "computed_at": utcnow()} for i, x in enumerate(suggestions)])


# ---------------------------------------------------------------------------------------
# Serving


def on_the_fly(s: Session, p: Profile, limit: int) -> list[Suggestion]:
    """Suggestions with no precomputed list (a new athlete, or before the first training):
    content and popularity among the routes within reach, as the last training weighed them."""
    from core.recommend.model import REACH_M

    reach_deg = REACH_M.get(p.sport, REACH_M["run"]) / 111_320.0
    cos = max(math.cos(math.radians(p.lat)), 0.05)
    rows = s.execute(select(Route.id, Route.start_lat, Route.start_lon, Route.distance_m, Route.path_m,
                            Route.hilliness_m_per_km, Route.sports, Route.name, Route.athletes).where(
        Route.start_lat.between(p.lat - reach_deg, p.lat + reach_deg),
        Route.start_lon.between(p.lon - reach_deg / cos, p.lon + reach_deg / cos))
        .order_by(Route.id).limit(ON_THE_FLY_MAX)).all()
    if not rows:
        return []
    cat = _catalogue(rows)
    rec = Recommender(cat, [], blend=_state(s).get("blend"))
    rec.popularity = np.array([r.athletes for r in rows], dtype=float)
    return rec.rank(p, limit)


def suggestions_for(s: Session, user_id: int, limit: int = 10) -> list[tuple[Route, RouteSuggestion | Suggestion]]:
    """The athlete's route suggestions, best first: the precomputed list less what they
    dismissed, saved or did since, and routes gone; computed on the spot when there is none."""
    p = profile(s, user_id)
    if p is None:
        return []
    excluded = set(p.done) | p.dismissed
    rows = s.execute(select(Route, RouteSuggestion).join(RouteSuggestion, RouteSuggestion.route_id == Route.id)
                     .where(RouteSuggestion.user_id == user_id).order_by(RouteSuggestion.rank)
                     .limit(limit + len(excluded))).all()
    picked = [(route, sug) for route, sug in rows if route.id not in excluded and route.start_lat is not None]
    if not picked:  # nothing stored yet, or all of it done or dismissed since
        fresh = on_the_fly(s, p, limit)
        routes = {r.id: r for r in s.scalars(select(Route).where(Route.id.in_([x.route for x in fresh])))}
        picked = [(routes[x.route], x) for x in fresh if x.route in routes]
    return picked[:limit]


# ---------------------------------------------------------------------------------------
# Signals and settings


def give(s: Session, user_id: int, route_id: int, kind: str, value: float = 1.0) -> RouteSignal:
    """Record a rating (1-5, only of a route the athlete completed), a save or a "not for me"."""
    if kind not in SIGNALS:
        raise SignalError(f"unknown signal {kind!r}; one of {', '.join(SIGNALS)}")
    if isinstance(route_id, bool) or not isinstance(route_id, int) or not 0 < route_id < 2 ** 63 \
            or s.get(Route, route_id) is None:
        raise SignalError("no such route")
    if kind != "rating":
        value = 1.0
    if kind == "rating":
        if not (isinstance(value, int | float) and not isinstance(value, bool) and 1 <= value <= 5
                and float(value).is_integer()):
            raise SignalError("a rating is a whole number of stars from 1 to 5")
        did = s.scalar(select(func.count()).select_from(RouteActivity).where(
            RouteActivity.user_id == user_id, RouteActivity.route_id == route_id))
        if not did:
            raise SignalError("rate a route after completing it")
    row = s.get(RouteSignal, (user_id, route_id, kind)) or RouteSignal(user_id=user_id, route_id=route_id, kind=kind)
    row.value, row.at = float(value), utcnow()
    s.add(row)
    if kind in ("dismiss", "save"):
        s.execute(delete(RouteSuggestion).where(RouteSuggestion.user_id == user_id,
                                                RouteSuggestion.route_id == route_id))
    s.flush()
    return row


def take_back(s: Session, user_id: int, route_id: int, kind: str) -> None:
    """Unsave, or undo a "not for me"."""
    s.execute(delete(RouteSignal).where(RouteSignal.user_id == user_id, RouteSignal.route_id == route_id,
                                        RouteSignal.kind == kind))


def saved_routes(s: Session, user_id: int) -> list[Route]:
    return list(s.scalars(select(Route).join(RouteSignal, RouteSignal.route_id == Route.id)
                          .where(RouteSignal.user_id == user_id, RouteSignal.kind == "save")
                          .order_by(RouteSignal.at.desc())))


def update_settings(s: Session, user_id: int, *, sport: str | None = None, usual_distance_m: float | None = None,
                    terrain: str | None = None, area: tuple[float, float] | None = None,
                    discoverable: bool | None = None) -> DiscoverySettings:
    """Store the answers to the settings question; the area is kept rounded to about a
    kilometre. Invalid answers raise ValueError with the reason."""
    row = s.get(DiscoverySettings, user_id) or DiscoverySettings(user_id=user_id, terrain="any", discoverable=True)

    def number(x, what: str) -> float:
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise ValueError(f"{what} must be a number")
        return float(x)

    if sport is not None:
        if not isinstance(sport, str) or sport not in SPORTS:
            raise ValueError(f"sport must be one of {', '.join(SPORTS)}")
        row.sport = sport
    if usual_distance_m is not None:
        usual_distance_m = number(usual_distance_m, "usual distance")
        if not 500 <= usual_distance_m <= 500_000:
            raise ValueError("usual distance must be between 0.5 and 500 km")
        row.usual_distance_m = float(usual_distance_m)
    if terrain is not None:
        if not isinstance(terrain, str) or terrain not in TERRAINS:
            raise ValueError(f"terrain must be one of {', '.join(TERRAINS)}")
        row.terrain = terrain
    if area is not None:
        if not isinstance(area, tuple | list) or len(area) != 2:
            raise ValueError("the area must be a latitude and a longitude")
        lat, lon = number(area[0], "the latitude"), number(area[1], "the longitude")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError("the area must be a latitude and a longitude")
        row.area_lat, row.area_lon = round(lat, 2), round(lon, 2)
    if discoverable is not None:
        if not isinstance(discoverable, bool):
            raise ValueError("'let others find me' is yes or no")
        row.discoverable = discoverable
    row.updated_at = datetime.now(UTC)
    s.add(row)
    s.flush()
    return row


def is_discoverable(s: Session, user_id: int) -> bool:
    row = s.get(DiscoverySettings, user_id)
    return row is None or bool(row.discoverable)
