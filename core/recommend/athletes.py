"""Athletes to follow: training partners (same sport, similar pace, starting in the same
area at similar times, on the same routes) and friends of friends.

Only athletes who allow being found are suggested (``DiscoverySettings.discoverable``, on
unless they turn it off). What is known of a candidate comes from their public activities
not held as anomalous, never from a followers-only or private one; a reason names a
public route at most, never a place or a time of theirs more exact than "near where you
start" and "mornings".
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select

from core.accounts.tables import User
from core.activities.tables import Activity
from core.recommend.model import metres
from core.recommend.service import profile
from core.recommend.tables import DiscoverySettings
from core.routes.tables import Route, RouteActivity
from core.social.follows import blocked_or_blocking, requested_among
from core.social.tables import Friend

NEAR_M = 5_000.0
PACE_SPREAD = 0.12  # log speed ratio over which a pace stops being "similar"
HOURS_SPREAD = 2.0
MAX_CANDIDATES = 500
WEIGHTS = {"mutual": 1.0, "routes": 1.0, "sport": 0.5, "pace": 0.8, "near": 0.8, "hour": 0.4}


@dataclass
class AthleteSuggestion:
    user: User
    score: float
    reason: str


def _period(hour: float) -> str:
    return "mornings" if 4 <= hour < 11 else ("middays" if hour < 14 else ("evenings" if hour < 22 else "nights"))


def _public(s, user_ids):
    """Each candidate's public, unheld completed activities: sport, speed, start hour."""
    rows = s.execute(select(Activity.user_id, Activity.sport, Activity.avg_speed_mps, Activity.start_time)
                     .where(Activity.user_id.in_(user_ids), Activity.status == "completed",
                            Activity.visibility == "public", Activity.held.is_(False))).all()
    out = {}
    for u, sport, speed, start in rows:
        out.setdefault(u, []).append((sport, speed, start))
    return out


def suggest_athletes(s, user_id: int, limit: int = 10) -> list[AthleteSuggestion]:
    me = profile(s, user_id)
    following = set(s.scalars(select(Friend.friend_id).where(Friend.user_id == user_id)))
    mutual = Counter(s.scalars(select(Friend.friend_id).where(Friend.user_id.in_(following)))) if following \
        else Counter()
    my_routes = set(s.scalars(select(RouteActivity.route_id).where(
        RouteActivity.user_id == user_id, RouteActivity.route_id.is_not(None))))
    shared = {}
    if my_routes:
        for u, r in s.execute(select(RouteActivity.user_id, RouteActivity.route_id).where(
                RouteActivity.route_id.in_(my_routes), RouteActivity.counted).distinct()):
            shared.setdefault(u, set()).add(r)
    starts = {}
    if me is not None:
        box = NEAR_M * 2 / 111_320.0
        cos = max(math.cos(math.radians(me.lat)), 0.05)
        for u, lat, lon in s.execute(select(RouteActivity.user_id, RouteActivity.start_lat, RouteActivity.start_lon)
                                     .where(RouteActivity.counted,
                                            RouteActivity.start_lat.between(me.lat - box, me.lat + box),
                                            RouteActivity.start_lon.between(me.lon - box / cos, me.lon + box / cos))
                                     .limit(20 * MAX_CANDIDATES)):
            starts.setdefault(u, []).append((lat, lon))
    apart = set(s.scalars(blocked_or_blocking(user_id))) | requested_among(
        s, user_id, list(set(mutual) | set(shared) | set(starts)))
    pool = (set(mutual) | set(shared) | set(starts)) - following - apart - {user_id}
    hidden = set(s.scalars(select(DiscoverySettings.user_id).where(DiscoverySettings.user_id.in_(pool),
                                                                   DiscoverySettings.discoverable.is_(False))))
    pool = sorted(pool - hidden)[:MAX_CANDIDATES]
    if not pool:
        return []
    users = {u.id: u for u in s.scalars(select(User).where(User.id.in_(pool)))}
    public = _public(s, pool)
    mine = [(a.sport, a.avg_speed_mps, a.start_time) for a in s.scalars(select(Activity).where(
        Activity.user_id == user_id, Activity.status == "completed"))]
    my_sport = me.sport if me else (Counter(x[0] for x in mine).most_common(1)[0][0] if mine else "run")
    my_speed = statistics.median([v for sp, v, _ in mine if sp == my_sport and v]) if mine else None
    my_hour = statistics.median([t.hour + t.minute / 60 for _, _, t in mine if t]) if mine else None
    out = []
    for u in pool:
        theirs = public.get(u, [])
        if u not in users or (not theirs and u not in mutual):
            continue
        sport = Counter(x[0] for x in theirs).most_common(1)[0][0] if theirs else None
        speeds = [v for sp, v, _ in theirs if sp == my_sport and v]
        hours = [t.hour + t.minute / 60 for _, _, t in theirs if t]
        part = {"mutual": math.log1p(mutual.get(u, 0)), "routes": math.log1p(len(shared.get(u, ()))),
                "sport": float(sport == my_sport), "pace": 0.0, "near": 0.0, "hour": 0.0}
        if speeds and my_speed:
            part["pace"] = math.exp(-abs(math.log(statistics.median(speeds) / my_speed)) / PACE_SPREAD)
        if starts.get(u) and me is not None:
            lat = statistics.median(a for a, _ in starts[u])
            lon = statistics.median(b for _, b in starts[u])
            part["near"] = math.exp(-float(metres(me.lat, me.lon, lat, lon)) / NEAR_M)
        if hours and my_hour is not None:
            gap = abs(statistics.median(hours) - my_hour)
            part["hour"] = math.exp(-min(gap, 24 - gap) / HOURS_SPREAD)
        score = sum(WEIGHTS[k] * v for k, v in part.items())
        out.append(AthleteSuggestion(users[u], score, _reason(s, part, mutual.get(u, 0), shared.get(u, set()),
                                                              my_sport, hours)))
    out.sort(key=lambda a: (-a.score, a.user.id))
    return out[:limit]


def _reason(s, part, mutual, shared, sport, hours) -> str:
    verb = "runs" if sport == "run" else "rides"
    bits = []
    if shared:
        name = s.scalar(select(Route.name).where(Route.id.in_(shared)).order_by(Route.activities.desc()).limit(1))
        bits.append(f"{verb} {name} like you" if name else f"{verb} your routes")
    if part["pace"] > 0.5:
        bits.append("at a similar pace")
    if not shared and part["near"] > 0.3:
        bits.append(f"{verb} near where you start" if not bits else "near where you start")
    if hours and part["hour"] > 0.5 and len(bits) < 3:
        bits.append(_period(statistics.median(hours)))
    if mutual:
        lead = f"followed by {mutual} athlete{'s' if mutual != 1 else ''} you follow"
        return lead if not bits else f"{lead}; {', '.join(bits)}"
    return ", ".join(bits) if bits else f"{verb} like you"
