"""The pages' access to the database and Redis: shared connections, and cached reads keyed by
the viewer, so a rerun of a page does not query again. Writes clear what they change."""

from __future__ import annotations

import logging

import streamlit as st

from core.accounts.users import user_by_id
from core.activities import originals
from core.challenges import groups as groups_module
from core.challenges.assign import decline
from core.config import load_settings
from core.recommend.service import give, take_back, update_settings
from core.social.follows import follow
from core.social.leaderboards import connect_redis, leaderboard
from core.storage import points
from core.storage.cold import open_archive
from core.storage.engine import make_engine, make_sessionmaker, write_transaction
from core.storage.schema import migrate
from core.units import unit_length_m
from dashboard import queries
from dashboard.maps import map_of_route, route_layers

log = logging.getLogger(__name__)


@st.cache_resource(show_spinner=False)
def sessions():
    """The session factory (one engine per server process; the schema is brought up to date)."""
    engine = make_engine(load_settings().database_url)
    migrate(engine)
    return make_sessionmaker(engine)


@st.cache_resource(show_spinner=False)
def redis():
    return connect_redis(load_settings().redis_url)


@st.cache_data(ttl=30, show_spinner=False, max_entries=5000)
def feed(viewer_id: int, cursor: str | None, limit: int = 10) -> dict:
    with sessions()() as s:
        return queries.feed(s, viewer_id, cursor, limit)


@st.cache_data(ttl=30, show_spinner=False, max_entries=2000)
def badges(viewer_id: int) -> dict:
    with sessions()() as s:
        return queries.badge_standing(s, viewer_id)


def decline_challenge(viewer_id: int, challenge_id: int, reason: str) -> None:
    """The viewer declines one of their challenges (ChallengeError says why not)."""
    with write_transaction(sessions(), "challenges") as s:
        decline(s, viewer_id, challenge_id, reason)
    badges.clear()


@st.cache_data(ttl=30, show_spinner=False, max_entries=2000)
def groups(viewer_id: int) -> dict:
    with sessions()() as s:
        return queries.group_standing(s, viewer_id)


def create_group(viewer_id: int, kind: str, invitees: list[int], sport: str | None, target: float | None) -> None:
    """A new group challenge by the viewer (GroupError says why not)."""
    with write_transaction(sessions(), "challenges") as s:
        groups_module.create_group(s, user_by_id(s, viewer_id), kind, invitees, sport=sport, target=target)
    groups.clear()


def answer_group(viewer_id: int, group_id: int, join: bool) -> None:
    """The viewer joins or declines a group challenge they were invited to."""
    with write_transaction(sessions(), "challenges") as s:
        groups_module.respond(s, viewer_id, group_id, join)
    groups.clear()


def leave_group(viewer_id: int, group_id: int) -> None:
    """The viewer leaves a group challenge."""
    with write_transaction(sessions(), "challenges") as s:
        groups_module.leave(s, viewer_id, group_id)
    groups.clear()


@st.cache_data(ttl=3600, show_spinner=False, max_entries=20000)
def route_preview(viewer_id: int, activity_id: int) -> list:
    with sessions()() as s:
        return queries.route_preview(s, viewer_id, activity_id)


@st.cache_data(ttl=600, show_spinner=False, max_entries=500)
def activity_detail(viewer_id: int, activity_id: int) -> dict | None:
    with sessions()() as s:
        return queries.activity_detail(s, viewer_id, activity_id)


def note_view(activity_id: int) -> None:
    """An activity page was opened: an archived activity viewed often comes back (not cached)."""
    points.note_view(sessions(), activity_id)


@st.cache_data(ttl=600, show_spinner=False, max_entries=200)
def activity_map_layers(viewer_id: int, activity_id: int, units: str) -> dict | None:
    """What the activity's map draws, computed once (simplifying a long track takes a while)."""
    detail = activity_detail(viewer_id, activity_id)
    if detail is None or detail["lat"].size < 2:
        return None
    return route_layers(detail["lat"], detail["lon"], detail["speed"], detail["distance"],
                        unit_m=unit_length_m(units))


def activity_map(viewer_id: int, activity_id: int, units: str):
    """A new folium map of the activity on every run: rendering a map object adds to it, so a
    shared one would grow (and slow down) with every view."""
    layers = activity_map_layers(viewer_id, activity_id, units)
    return None if layers is None else map_of_route(layers)


def own_flag(viewer_id: int, activity_id: int) -> dict | None:
    """The verdict on one of the viewer's activities (``queries.own_flag``), with
    ``crop_pending`` when a crop waits for its new score: then read afresh at every view,
    since a scorer writes it in a moment, and not kept."""
    with sessions()() as s:
        if queries.crop_pending(s, viewer_id, activity_id):
            return {**(queries.own_flag(s, viewer_id, activity_id) or {"status": None}), "crop_pending": True}
    return _own_flag(viewer_id, activity_id)


@st.cache_data(ttl=600, show_spinner=False, max_entries=500)
def _own_flag(viewer_id: int, activity_id: int) -> dict | None:
    with sessions()() as s:
        return queries.own_flag(s, viewer_id, activity_id)


@st.cache_data(ttl=600, show_spinner=False, max_entries=200)
def activity_gpx(viewer_id: int, activity_id: int) -> str | None:
    with sessions()() as s:
        return queries.activity_gpx(s, viewer_id, activity_id)


def original_file(viewer_id: int, activity_id: int) -> dict | None:
    """The name and size of the file the viewer's own activity was imported from, if any."""
    with sessions()() as s:
        return originals.described(s, viewer_id, activity_id)


def original_bytes(viewer_id: int, activity_id: int) -> bytes:
    """That file's bytes, as uploaded (empty when it is gone meanwhile or cannot be read)."""
    with sessions()() as s:
        row = originals.original_of(s, viewer_id, activity_id)
    if row is None:
        return b""
    try:
        return originals.unpacked(open_archive(load_settings()), row)
    except originals.OriginalFileError:
        log.exception("activity %s: the original file could not be read", activity_id)
        return b""


@st.cache_data(ttl=120, show_spinner=False, max_entries=1000)
def my_activities(user_id: int) -> list[dict]:
    with sessions()() as s:
        return queries.my_activities(s, user_id)


@st.cache_data(ttl=600, show_spinner=False, max_entries=200)
def my_routes(user_id: int, sport: str | None) -> list:
    with sessions()() as s:
        return queries.my_routes(s, user_id, sport)


@st.cache_data(ttl=60, show_spinner=False, max_entries=2000)
def board(period: str, sport: str, scope: str, viewer_id: int, limit: int = 10):
    with sessions()() as s:
        return leaderboard(s, redis(), period, sport, scope, viewer_id, limit)


@st.cache_data(ttl=3, show_spinner=False, max_entries=1000)
def live(viewer_id: int) -> list[dict]:
    with sessions()() as s:
        return queries.live_activities(s, viewer_id, redis())


@st.cache_data(ttl=300, show_spinner=False, max_entries=2000)
def route_suggestions(viewer_id: int, limit: int = 10) -> dict:
    with sessions()() as s:
        return queries.route_suggestions(s, viewer_id, limit)


@st.cache_data(ttl=300, show_spinner=False, max_entries=2000)
def athlete_suggestions(viewer_id: int, limit: int = 10) -> list[dict]:
    with sessions()() as s:
        return queries.athlete_suggestions(s, viewer_id, limit)


def route_signal(viewer_id: int, route_id: int, kind: str, value: float | None = 1.0) -> None:
    """A rating, a save or a "not for me" (``core.recommend.service.give``: a refused one
    raises SignalError with the reason); the suggestions are read again."""
    with sessions()() as s, s.begin():
        give(s, viewer_id, route_id, kind, value)
    forget_suggestions()


def take_back_route_signal(viewer_id: int, route_id: int, kind: str) -> None:
    """Unsave a route, or undo a "not for me"."""
    with sessions()() as s, s.begin():
        take_back(s, viewer_id, route_id, kind)
    forget_suggestions()


def save_discovery_settings(viewer_id: int, **answers) -> None:
    """The answers to the suggestions question (``core.recommend.service.update_settings``:
    an invalid one raises ValueError with the reason, and nothing is stored)."""
    with sessions()() as s, s.begin():
        update_settings(s, viewer_id, **answers)
    forget_suggestions()


def follow_athlete(viewer_id: int, other_id: int) -> str:
    """Follow an athlete, or ask to: "following" or "requested" (``core.social.follows.follow``;
    a refusal raises FollowRefused with the reason)."""
    state = "following"
    with sessions()() as s, s.begin():
        me, other = user_by_id(s, viewer_id), user_by_id(s, other_id)
        if other is not None:
            state = follow(s, me, other)
    forget_activity()  # a page cached as not theirs to see may now be
    forget_suggestions()
    live.clear()
    return state


def forget_suggestions() -> None:
    """After a signal, a change of settings, a follow or a new activity: suggestions read again."""
    route_suggestions.clear()
    athlete_suggestions.clear()


def forget_activity() -> None:
    """After an owner edited or deleted an activity: every cached view of it goes."""
    activity_detail.clear()
    activity_map_layers.clear()
    activity_gpx.clear()
    _own_flag.clear()
    route_preview.clear()
    forget_activity_lists()


def forget_activity_lists() -> None:
    """After an upload or a change of an activity, or a follow: lists, stats and suggestions read again."""
    feed.clear()
    my_activities.clear()
    my_routes.clear()
    board.clear()
    forget_suggestions()
