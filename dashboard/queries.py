"""What the pages read and write, as plain functions of a database session: calls to
``core``, shaped for display.

Every read takes the viewer's id and goes through ``core``'s visibility rules (route points
through ``core.storage.points``' reads by viewer), so no page can show another athlete's
private data by asking for it. ``dashboard.data`` wraps the reads in Streamlit caches keyed
by user.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.accounts import tokens
from core.accounts.tables import User
from core.activities import open as open_activities
from core.activities.summary import activity_profile, splits_in
from core.activities.tables import Activity
from core.anomaly import moderation
from core.anomaly.detector import as_athlete_sees
from core.challenges.assign import challenges_of
from core.challenges.award_reads import awards_for, completed_by, standing
from core.challenges.badges import left as badge_left
from core.challenges.badges import shown, time_zone
from core.challenges.groups import board, describe_group, groups_of, mutual_follows
from core.recommend import service as recommend
from core.recommend.athletes import suggest_athletes
from core.routes.matching import athlete_routes
from core.routes.tables import Route
from core.social import follows
from core.social.feed import feed_page, own_activities
from core.social.privacy import hiding_for, hidings_of, kept_mask
from core.social.shown import shown_figures
from core.social.visibility import live_filter, viewable
from core.storage.points import routes, viewer_route, viewer_track
from core.tracks.formats.gpx import to_gpx
from core.units import UNITS
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
    zone: str = "UTC"  # the time zone their pages show times in


def viewer_for(user: User) -> Viewer:
    """The pages' view of a user: their unit system and time zone are the ones in their
    settings (metric and UTC when unset or unknown)."""
    units = (user.settings or {}).get("units", "metric")
    return Viewer(user.id, user.username, user.name, user.role, units if units in UNITS else "metric",
                  str(time_zone(user.settings)))


def card(a: Activity, shown: dict | None = None) -> dict:
    """An activity as pages list it; ``shown`` holds the figures its athlete's privacy
    settings let the viewer see instead of the stored ones (``core.social.privacy``)."""
    out = {"id": a.id, "user_id": a.user_id, "athlete": a.user.name, "username": a.user.username,
           "sport": a.sport, "title": a.title or "", "visibility": a.visibility, "status": a.status,
           "start_time": a.start_time, "distance_m": a.distance_m, "moving_time_s": a.moving_time_s,
           "elapsed_time_s": a.elapsed_time_s, "avg_speed_mps": a.avg_speed_mps,
           "elevation_gain_m": a.elevation_gain_m}
    if shown:
        out.update({k: shown[k] for k in out if k in shown})
    return out


def badge_cards(badges) -> list[dict]:
    """Badges as the pages show them (catalogue data: code, name, icon, description)."""
    return [{"code": b.code, "name": b.name, "icon": b.icon, "description": b.description} for b in badges]


def challenge_cards(challenges) -> list[dict]:
    """Challenges as the pages show them (the words are made in the viewer's units)."""
    return [{"id": c.id, "week": c.week, "kind": c.kind, "sport": c.sport, "target": c.target, "progress": c.progress,
             "status": c.status, "deadline": c.deadline, "decline_reason": c.decline_reason, "level": c.level,
             "usual": c.usual} for c in challenges]


def feed(s, viewer_id: int, cursor: str | None, limit: int = 10) -> dict:
    """A page of the feed, each card with the badges its activity earned."""
    page = feed_page(s, viewer_id, cursor=cursor, limit=limit)
    ids = [a.id for a in page.items]
    earned, completed = awards_for(s, ids), completed_by(s, ids)
    own = {a.id: a.user_id == viewer_id for a in page.items}
    figures = shown_figures(s, viewer_id, page.items)
    return {"items": [{**card(a, figures.get(a.id)), "badges": badge_cards(shown(earned[a.id], own[a.id], figures.get(a.id))),
                       "challenges": challenge_cards(completed[a.id] if own[a.id] else [])} for a in page.items],
            "next_cursor": page.next_cursor}


def route_preview(s, viewer_id: int, activity_id: int) -> list[tuple[float, float]]:
    """A few dozen points of the route, for the feed card's sketch."""
    route = viewer_route(s, viewer_id, viewable(s, viewer_id, activity_id))
    if route is None or len(route[0]) < 2:
        return []
    lat, lon = route
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


def activity_detail(s, viewer_id: int, activity_id: int) -> dict | None:
    """Everything the activity page draws, or None if the viewer may not see it (nor look
    at it as a moderator)."""
    a = viewable(s, viewer_id, activity_id, review=True)
    track = viewer_track(s, viewer_id, a, review=True)
    if track is None:
        return None
    clean, profile = activity_profile(s, a, track)
    figures = shown_figures(s, viewer_id, [a]).get(a.id)
    summary = (figures["summary"] if figures else a.summary) or {}
    return {
        **card(a, figures),
        "badges": badge_cards(shown(awards_for(s, [a.id])[a.id], a.user_id == viewer_id, figures)),
        "challenges": challenge_cards(completed_by(s, [a.id])[a.id] if a.user_id == viewer_id else []),
        "summary": summary,
        "lat": profile.lat, "lon": profile.lon, "t": profile.t,
        "distance": profile.cum_distance_m, "moving": profile.cum_moving_s, "speed": profile.speed_mps,
        "ele": clean.ele, "hr": clean.hr,
        "points": len(track),
        "splits": {units: splits_in(units, summary, profile) for units in UNITS},
    }


def activity_gpx(s, viewer_id: int, activity_id: int) -> str | None:
    a = viewable(s, viewer_id, activity_id, review=True)
    track = viewer_track(s, viewer_id, a, review=True)
    return None if track is None else to_gpx(track, name=a.title)


def my_activities(s, user_id: int) -> list[dict]:
    """The athlete's own completed activities with the figures the stats page sums (and
    whether each is held for the moderators: its bests are not records)."""
    out = []
    for a in own_activities(s, user_id):
        bests = (a.summary or {}).get("best_efforts_s", {})
        out.append({**card(a), "best_1k_s": bests.get("1000"), "best_5k_s": bests.get("5000"),
                    "best_10k_s": bests.get("10000"), "held": bool(a.held)})
    return out


def my_routes(s, user_id: int, sport: str | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every route of the athlete's own completed activities, simplified for drawing."""
    found = routes(s, [a.id for a in own_activities(s, user_id, sport)])
    drawn = []
    for activity_id in sorted(found):
        lat, lon = found[activity_id]
        if len(lat) >= 2:
            idx = drawable(lat, lon, 300)
            drawn.append((lat[idx], lon[idx]))
    return drawn


def live_activities(s, viewer_id: int, redis=None) -> list[dict]:
    """Activities being recorded now that the viewer may watch (``core.social.visibility.
    live_filter``), as ``core.activities.open.live_activities`` finds them, as cards."""
    found = open_activities.live_activities(s, live_filter(viewer_id), redis)
    hidings = hidings_of(s, [live.activity.user_id for live in found if live.activity.user_id != viewer_id])
    # Of an athlete who hides a zone, the ends or the map, others see no position and no
    # figures while recording: where the activity will end is not known yet, and the
    # distance or time so far, read against what the finished activity shows, would tell
    # how much of its start is hidden.
    out = []
    for live in found:
        row = {**card(live.activity), "stats": live.stats, "source": live.source, "position": live.position}
        if hidings.get(live.activity.user_id):
            row.update(stats=None, position=None, start_time=None, distance_m=None, moving_time_s=None,
                       elapsed_time_s=None, avg_speed_mps=None, elevation_gain_m=None)
        out.append(row)
    return out


def device_tokens(s, user_id: int) -> list[dict]:
    """The athlete's device tokens (``core.accounts.tokens.device_tokens``) for the settings page."""
    return [{"id": r.id, "name": r.name, "created_at": r.created_at, "last_used_at": r.last_used_at,
             "revoked": r.revoked} for r in tokens.device_tokens(s, user_id)]


def search_athletes(s, viewer_id: int, text: str, limit: int = 20) -> list[dict]:
    """Athletes whose username or name contains ``text`` (``core.social.follows.search_athletes``),
    each with the viewer's standing with them: "following", "requested", "blocked" or ""."""
    found = follows.search_athletes(s, viewer_id, text, limit)
    ids = [u.id for u, _ in found]
    requested = follows.requested_among(s, viewer_id, ids)
    blocked = {u.id for u in follows.blocked_athletes(s, viewer_id)}
    return [{"id": u.id, "username": u.username, "name": u.name, "following": following,
             "state": "blocked" if u.id in blocked else "following" if following
             else "requested" if u.id in requested else ""}
            for u, following in found]


def follow_lists(s, viewer_id: int) -> dict:
    """Who the viewer follows, who follows them, who waits for their approval, whom they blocked."""
    def rows(users):
        return [{"id": u.id, "username": u.username, "name": u.name} for u in users]

    return {"following": rows(follows.followed_athletes(s, viewer_id)),
            "followers": follows.follower_count(s, viewer_id),
            "follower_list": rows(follows.followers(s, viewer_id)),
            "requests": rows(follows.pending_requests(s, viewer_id)),
            "blocked": rows(follows.blocked_athletes(s, viewer_id))}


def own_flag(s, viewer_id: int, activity_id: int) -> dict | None:
    """The anomaly verdict on one of the viewer's own activities (None for others'), with the
    latest moderator's note."""
    flag = moderation.own_flag(s, viewer_id, activity_id)
    if flag is None:
        return None
    decision = moderation.latest_decision(s, activity_id)
    crop = dict(flag.crop) if flag.crop else flag.crop
    if crop and crop.get("reasons_before"):
        crop["reasons_before"] = [as_athlete_sees(r) for r in crop["reasons_before"]]
    return {"status": flag.status, "score": flag.score, "reasons": [as_athlete_sees(r) for r in flag.reasons or []],
            "note": decision.note if decision else "", "crop": crop}


def crop_pending(s, viewer_id: int, activity_id: int) -> bool:
    """Whether the viewer's crop of their activity waits for its new score (a scorer of the
    stream writes it: ``core.anomaly.moderation.crop_activity``)."""
    return moderation.crop_pending(s, viewer_id, activity_id)


def review_item(s, activity_id: int, viewer_id: int) -> dict | None:
    """What a moderator sees of a flagged activity (the caller checked the role). The map is
    drawn from the stored points (``map_lat``, ``map_lon``, ``map_t``) where ``shown``: what
    every other surface shows others of them, since moderators are not the athlete. The time
    and speed chart covers the whole activity: it is the evidence of a stretch they hide."""
    item = moderation.review_item(s, activity_id)
    if item is None:
        return None
    flag, a, user, profile, track = item.flag, item.activity, item.athlete, item.profile, item.track
    hiding = hiding_for(s, viewer_id, a.user_id)
    # As ``core.storage.points.viewer_track``: every point when the athlete hides nothing.
    shown = kept_mask(hiding, track.lat, track.lon, a.id) if hiding else np.ones(len(track.t), dtype=bool)
    return {
        "activity_id": a.id, "title": a.title, "sport": a.sport, "athlete": user.name, "username": user.username,
        "start_time": a.start_time, "distance_m": a.distance_m, "avg_speed_mps": a.avg_speed_mps,
        "score": flag.score, "status": flag.status, "reasons": list(flag.reasons or []), "codes": flag.codes,
        "crop": flag.crop,  # the athlete's crops since the flag was raised, and the reasons before them
        "stretches": item.stretches,
        "lat": profile.lat, "lon": profile.lon, "t": profile.t, "speed": profile.speed_mps,
        "map_lat": track.lat, "map_lon": track.lon, "map_t": track.t, "shown": shown,
        "hidden_points": int((~shown).sum()),
        "usual": item.usual,
    }


def badge_standing(s, viewer_id: int) -> dict:
    """The Challenges page: the challenges of the last weeks, the badges earned (newest
    first, with the activity), withdrawn (with why), the next ones with the athlete's
    progress and what is left, and activities per week."""
    user = s.get(User, viewer_id)
    st = standing(s, user)
    system = (user.settings or {}).get("units", "metric")
    return {
        "earned": [{**badge_cards([b])[0], "activity_id": a.activity_id, "earned_at": a.earned_at} for a, b in st.earned],
        "withdrawn": [{**badge_cards([b])[0], "withdrawn_at": a.withdrawn_at, "reason": a.withdrawn_reason or ""}
                      for a, b in st.withdrawn],
        "next": [{**badge_cards([b])[0], "share": min(figure / b.at_least, 1.0), "left": badge_left(b, figure, system)}
                 for b, figure in st.next],
        "weeks": st.weeks, "streak": st.streak, "time_zone": st.time_zone,
        "challenges": challenge_cards(challenges_of(s, viewer_id, weeks=6)),
    }


def group_standing(s, viewer_id: int) -> dict:
    """The viewer's group challenges (invitations and joined, with each board) and the
    athletes they could invite (those who follow them and whom they follow)."""

    out = []
    for g, status in groups_of(s, viewer_id):
        b = board(s, g.id, viewer_id)
        out.append({"id": g.id, "kind": g.kind, "status": status, "what": describe_group(g), "creator": b.creator,
                    "creator_username": b.creator_username,
                    "starts_at": g.starts_at, "ends_at": g.ends_at, "target": g.target, "complete": b.complete,
                    "rows": [{"user_id": r.user_id, "name": r.name, "username": r.username, "status": r.status,
                              "value": r.value, "done": r.done} for r in b.rows]})
    friends = [{"id": u.id, "name": u.name, "username": u.username} for u in mutual_follows(s, viewer_id)]
    return {"groups": out, "friends": friends}


def route_card(route: Route) -> dict:
    """What a page shows of a route: its name (from activity titles: user text), its polyline
    (kept clear of every start and end by ``core.routes``: the only geometry shown), figures."""
    return {"id": route.id, "name": route.name or "", "kind": route.kind,
            "polyline": [[float(lat), float(lon)] for lat, lon in (route.polyline or [])],
            "distance_m": route.distance_m, "elevation_gain_m": route.elevation_gain_m,
            "athletes": route.athletes, "activities": route.activities}


def route_suggestions(s, viewer_id: int, limit: int = 10) -> dict:
    """Routes suggested to the viewer (``core.recommend.service.suggestions_for``), best first,
    each with the reason in plain words; with none, whether that is because nothing is known
    of where they start (no activity of theirs on a route, no area stated in settings)."""
    routes = [{**route_card(r), "reason": x.reason, "score": float(x.score)}
              for r, x in recommend.suggestions_for(s, viewer_id, limit)]
    located = bool(routes) or recommend.profile(s, viewer_id) is not None
    return {"routes": routes, "located": located}


def saved_routes(s, viewer_id: int) -> list[dict]:
    """The routes the viewer saved, newest save first."""
    return [route_card(r) for r in recommend.saved_routes(s, viewer_id)]


def completed_routes(s, viewer_id: int) -> list[dict]:
    """The routes the viewer has followed (``core.routes.matching.athlete_routes``), most often
    first, with how often and when last: the ones they may rate."""
    return [{**route_card(r), "times": n, "last": last} for r, n, last in athlete_routes(s, viewer_id)]


def athlete_suggestions(s, viewer_id: int, limit: int = 10) -> list[dict]:
    """Athletes suggested to the viewer to follow (``core.recommend.athletes``), with why."""
    return [{"id": a.user.id, "username": a.user.username, "name": a.user.name, "reason": a.reason,
             "score": float(a.score)} for a in suggest_athletes(s, viewer_id, limit)]


def discovery_settings(s, viewer_id: int) -> dict:
    """The viewer's answers to the suggestions question; nothing stated, and findable, when
    they never answered."""
    row = recommend.settings_of(s, viewer_id)
    if row is None:
        return {"sport": None, "usual_distance_m": None, "terrain": "any", "area": None, "discoverable": True}
    area = (row.area_lat, row.area_lon) if row.area_lat is not None and row.area_lon is not None else None
    return {"sport": row.sport, "usual_distance_m": row.usual_distance_m, "terrain": row.terrain or "any",
            "area": area, "discoverable": recommend.is_discoverable(s, viewer_id)}
