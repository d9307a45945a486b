"""What the pages read and write, as plain functions of a database session.

Every read takes the viewer's id and applies the feed's visibility rules, so no page can
show another athlete's private data by asking for it. ``dashboard.data`` wraps the reads in
Streamlit caches keyed by user.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, or_, select

from core.accounts.tables import DeviceToken, User
from core.activities import live_board as livestate
from core.activities.imports import import_track
from core.activities.lifecycle import OPEN_STATUSES
from core.activities.open import is_live, stored_live_stats
from core.activities.summary import pause_intervals
from core.activities.tables import Activity
from core.anomaly.tables import ActivityFlag, ModerationDecision
from core.social.feed import feed_page
from core.social.tables import Friend
from core.social.visibility import can_view
from core.storage.points import RoutePoint, stored_track
from core.tracks.cleaning import clean_track
from core.tracks.formats import load_track
from core.tracks.formats.gpx import to_gpx
from core.tracks.stats import build_profile
from core.tracks.track import Track
from dashboard.maps import drawable

PREVIEW_POINTS = 80


@dataclass(frozen=True)
class Viewer:
    """The signed-in user as the pages need them."""

    id: int
    username: str
    name: str
    role: str
    units: str


def viewer_for(user: User) -> Viewer:
    units = (user.settings or {}).get("units", "metric")
    return Viewer(user.id, user.username, user.name, user.role, units if units in ("metric", "imperial") else "metric")


def card(a: Activity) -> dict:
    return {"id": a.id, "user_id": a.user_id, "athlete": a.user.name, "username": a.user.username,
            "sport": a.sport, "title": a.title or "", "visibility": a.visibility, "status": a.status,
            "start_time": a.start_time, "distance_m": a.distance_m, "moving_time_s": a.moving_time_s,
            "elapsed_time_s": a.elapsed_time_s, "avg_speed_mps": a.avg_speed_mps,
            "elevation_gain_m": a.elevation_gain_m}


def feed(s, viewer_id: int, cursor: str | None, limit: int = 10) -> dict:
    page = feed_page(s, viewer_id, cursor=cursor, limit=limit)
    return {"items": [card(a) for a in page.items], "next_cursor": page.next_cursor}


def route_preview(s, viewer_id: int, activity_id: int) -> list[tuple[float, float]]:
    """A few dozen points of the route, for the feed card's sketch."""
    a = s.get(Activity, activity_id)
    if a is None or not can_view(s, viewer_id, a):
        return []
    rows = s.execute(select(RoutePoint.lat, RoutePoint.lon).where(RoutePoint.activity_id == activity_id,
                                                                 RoutePoint.lat.is_not(None))
                     .order_by(RoutePoint.seq)).all()
    if len(rows) < 2:
        return []
    lat = np.array([r[0] for r in rows])
    lon = np.array([r[1] for r in rows])
    idx = drawable(lat, lon, PREVIEW_POINTS)
    return list(zip(lat[idx].round(5).tolist(), lon[idx].round(5).tolist()))


def preview_svg(points: list[tuple[float, float]], width: int = 120, height: int = 80) -> str:
    """An inline SVG sketch of a route (numbers only: nothing user-written goes in it)."""
    if len(points) < 2:
        return ""
    lat = np.array([p[0] for p in points])
    lon = np.array([p[1] for p in points]) * np.cos(np.radians(lat.mean()))
    span = max(float(np.ptp(lat)), float(np.ptp(lon)), 1e-9)
    x = 4 + (lon - lon.min()) / span * (width - 8)
    y = height - 4 - (lat - lat.min()) / span * (height - 8)
    path = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y))
    return (f'<svg class="route-preview" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'xmlns="http://www.w3.org/2000/svg"><rect width="100%" height="100%" rx="6" fill="#f4f4f6"/>'
            f'<polyline points="{path}" fill="none" stroke="#fc4c02" stroke-width="2.5" '
            f'stroke-linejoin="round"/></svg>')


def _profile(s, a: Activity):
    """The stored track, its cleaned points and their per-point profile (pauses respected)."""
    track = stored_track(s, a)
    clean = clean_track(track)
    profile, _ = build_profile(clean, pause_intervals(s, a))
    return track, clean, profile


def activity_detail(s, viewer_id: int, activity_id: int) -> dict | None:
    """Everything the activity page draws, or None if the viewer may not see it."""
    a = s.get(Activity, activity_id)
    if a is None or not can_view(s, viewer_id, a):
        return None
    track, clean, profile = _profile(s, a)
    return {
        **card(a),
        "summary": a.summary or {},
        "lat": profile.lat, "lon": profile.lon, "t": profile.t,
        "distance": profile.cum_distance_m, "moving": profile.cum_moving_s, "speed": profile.speed_mps,
        "ele": clean.ele, "hr": clean.hr,
        "points": len(track),
    }


def activity_gpx(s, viewer_id: int, activity_id: int) -> str | None:
    a = s.get(Activity, activity_id)
    if a is None or not can_view(s, viewer_id, a):
        return None
    track = stored_track(s, a)
    return to_gpx(track, name=a.title)


def my_activities(s, user_id: int) -> list[dict]:
    """The athlete's own completed activities with the figures the stats page sums."""
    rows = s.scalars(select(Activity).where(Activity.user_id == user_id, Activity.status == "completed")
                     .order_by(Activity.start_time)).all()
    out = []
    for a in rows:
        bests = (a.summary or {}).get("best_efforts_s", {})
        out.append({**card(a), "best_1k_s": bests.get("1000"), "best_5k_s": bests.get("5000"),
                    "best_10k_s": bests.get("10000")})
    return out


def my_routes(s, user_id: int, sport: str | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every route of the athlete's own completed activities, simplified for drawing."""
    q = select(Activity.id).where(Activity.user_id == user_id, Activity.status == "completed")
    if sport:
        q = q.where(Activity.sport == sport)
    ids = list(s.scalars(q))
    routes = []
    for chunk in range(0, len(ids), 200):
        part = ids[chunk:chunk + 200]
        rows = s.execute(select(RoutePoint.activity_id, RoutePoint.lat, RoutePoint.lon)
                         .where(RoutePoint.activity_id.in_(part), RoutePoint.lat.is_not(None))
                         .order_by(RoutePoint.activity_id, RoutePoint.seq)).all()
        if not rows:
            continue
        arr = np.array([(r[0], r[1], r[2]) for r in rows], dtype=float)
        for aid in np.unique(arr[:, 0]):
            sel = arr[arr[:, 0] == aid]
            if len(sel) >= 2:
                idx = drawable(sel[:, 1], sel[:, 2], 300)
                routes.append((sel[idx, 1], sel[idx, 2]))
    return routes


def live_activities(s, viewer_id: int, redis=None) -> list[dict]:
    """Activities being recorded now that the viewer may see: their own, and those of athletes
    they follow (unless private), with a point in the last ``LIVE_RECENT_S`` (an activity whose
    device went silent longer ago is not live, though it stays open). Stats and position come
    from the ingest server's live state in Redis when configured and present; otherwise they
    are recomputed from the stored points and pauses, as the ingest server does."""
    follows = select(Friend.friend_id).where(Friend.user_id == viewer_id)
    rows = s.scalars(select(Activity).where(
        Activity.status.in_(OPEN_STATUSES),
        (Activity.user_id == viewer_id) | (Activity.user_id.in_(follows) & (Activity.visibility != "private")),
    ).order_by(Activity.created_at.desc()).limit(200)).all()
    now = time.time()
    rows = [a for a in rows if is_live(s, a, now)][:50]
    states = livestate.read(redis) if redis is not None and rows else {}
    out = []
    for a in rows:
        state = states.get(a.id)
        if state is not None and state.get("stats"):
            position = tuple(state["position"]) if state.get("position") else None
            out.append({**card(a), "stats": state["stats"], "position": position, "source": "redis"})
            continue
        live = stored_live_stats(s, a)
        position = (live.anchor[1], live.anchor[2], live.last_t) if live.anchor is not None else None
        out.append({**card(a), "stats": live.snapshot(), "position": position, "source": "database"})
    return out


def import_file(Session, user: User, name: str, data: bytes, sport: str | None = None,
                visibility: str | None = None) -> Activity:
    """Import one uploaded file in short write transactions of its own (``Session`` is the
    session factory, ``user`` may be detached); TrackFileError or ActivityError say why not."""
    track: Track = load_track(name, data)
    digest = hashlib.sha256(data).hexdigest()
    return import_track(Session, user, track, sport=sport, title=track.name or None, visibility=visibility,
                        source="upload", source_hash=digest)


def device_tokens(s, user_id: int) -> list[dict]:
    rows = s.scalars(select(DeviceToken).where(DeviceToken.user_id == user_id).order_by(DeviceToken.id)).all()
    return [{"id": r.id, "name": r.name, "created_at": r.created_at, "last_used_at": r.last_used_at,
             "revoked": r.revoked} for r in rows]


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_athletes(s, viewer_id: int, text: str, limit: int = 20) -> list[dict]:
    """Athletes whose username or name contains ``text`` (names are public), with whether the
    viewer follows them."""
    text = (text or "").strip()[:64]
    if not text:
        return []
    pattern = _like_pattern(text.lower())
    rows = s.scalars(select(User).where(User.id != viewer_id,
                                        or_(User.username.ilike(pattern, escape="\\"),
                                            User.name.ilike(pattern, escape="\\")))
                     .order_by(User.username).limit(limit)).all()
    following = _following_ids(s, viewer_id, [u.id for u in rows])
    return [{"id": u.id, "username": u.username, "name": u.name, "following": u.id in following} for u in rows]


def _following_ids(s, viewer_id: int, ids: list[int]) -> set[int]:
    if not ids:
        return set()
    return set(s.scalars(select(Friend.friend_id).where(Friend.user_id == viewer_id, Friend.friend_id.in_(ids))))


def follow_lists(s, viewer_id: int) -> dict:
    """Who the viewer follows, and how many follow them."""
    following = s.execute(select(User.id, User.username, User.name).join(Friend, Friend.friend_id == User.id)
                          .where(Friend.user_id == viewer_id).order_by(User.name)).all()
    followers = s.scalar(select(func.count()).select_from(Friend).where(Friend.friend_id == viewer_id)) or 0
    return {"following": [{"id": i, "username": u, "name": n} for i, u, n in following],
            "followers": int(followers)}


def own_flag(s, viewer_id: int, activity_id: int) -> dict | None:
    """The anomaly verdict on one of the viewer's own activities (None for others')."""
    flag = s.get(ActivityFlag, activity_id)
    if flag is None or flag.user_id != viewer_id:
        return None
    decision = s.scalars(select(ModerationDecision).where(ModerationDecision.activity_id == activity_id)
                         .order_by(ModerationDecision.id.desc()).limit(1)).first()
    return {"status": flag.status, "score": flag.score, "reasons": list(flag.reasons or []),
            "note": decision.note if decision else "", "crop": flag.crop}


def review_item(s, activity_id: int) -> dict | None:
    """What a moderator sees of a flagged activity (the caller checked the role)."""
    from core.anomaly.moderation import usual_figures

    row = s.execute(select(ActivityFlag, Activity, User).join(Activity, Activity.id == ActivityFlag.activity_id)
                    .join(User, User.id == Activity.user_id)
                    .where(ActivityFlag.activity_id == activity_id)).first()
    if row is None:
        return None
    flag, a, user = row
    _, _, profile = _profile(s, a)
    hits = (flag.verdict or {}).get("hits", [])
    return {
        "activity_id": a.id, "title": a.title, "sport": a.sport, "athlete": user.name, "username": user.username,
        "start_time": a.start_time, "distance_m": a.distance_m, "avg_speed_mps": a.avg_speed_mps,
        "score": flag.score, "status": flag.status, "reasons": list(flag.reasons or []), "codes": flag.codes,
        "crop": flag.crop,  # the athlete's crops since the flag was raised, and the reasons before them
        "stretches": [(h["t0"], h["t1"]) for h in hits if h.get("t0") is not None and h.get("t1") is not None],
        "lat": profile.lat, "lon": profile.lon, "t": profile.t, "speed": profile.speed_mps,
        "usual": usual_figures(s, a.user_id, a.sport, a.id),
    }
