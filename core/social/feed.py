"""The news feed: completed activities of a user and of those they follow, newest first.

Pages use a keyset cursor on (start_time, id), so page 50 costs what page 1 costs. Each
followed athlete's newest activities are read through the (user_id, status, start_time,
id) index with a per-athlete limit and merged, so a page reads at most
``page size x (followings + 1)`` index entries whatever the table's size. PostgreSQL does
this with one LATERAL join; SQLite, which has no LATERAL, with a UNION ALL of per-author
subqueries. ``own_activities`` lists an athlete's own, for their stats.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import Integer, TextClause, bindparam, select, text
from sqlalchemy.orm import Session

from core.activities.tables import Activity
from core.social.follows import followed_ids
from core.social.visibility import blockers_of, can_view
from core.storage.base import UTCDateTime

PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class CursorError(ValueError):
    """A feed cursor that was not made by this module."""


@dataclass
class FeedPage:
    """One page of the feed and the cursor for the next (None at the end)."""

    items: list[Activity]
    next_cursor: str | None


def encode_cursor(activity: Activity) -> str:
    """An opaque cursor pointing just after ``activity``. It holds the activity's id alone:
    its stored start time is not for every reader (an athlete's privacy settings may show
    others a later one, ``core.social.privacy``)."""
    return base64.urlsafe_b64encode(f"a:{activity.id}".encode()).decode()


def decode_cursor(s: Session, viewer_id: int, cursor: str) -> tuple[datetime, int]:
    """The (start_time, id) a cursor points after: an activity in ``viewer_id``'s feed."""
    try:
        kind, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        ident = int(ident)
        if kind != "a" or not 0 <= ident < 2**63:  # not one of ours (a forged cursor)
            raise ValueError("not a feed cursor")
    except (ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise CursorError("invalid feed cursor") from exc
    activity = s.get(Activity, ident)
    if activity is None or activity.start_time is None or not (
            activity.user_id == viewer_id or (can_view(s, viewer_id, activity)
                                              and activity.user_id in followed_ids(s, viewer_id))):
        raise CursorError("invalid feed cursor: start again from the first page")
    return activity.start_time, activity.id


@lru_cache(maxsize=256)
def _feed_sql(others: int, with_cursor: bool) -> TextClause:
    """The feed query for the viewer plus ``others`` followed athletes, built once per shape.

    Each author's newest activities come from the feed index with their own LIMIT; the
    outer query merges them. Written as SQL text because building the equivalent
    expression tree per request costs more than running it.
    """
    after = " AND (start_time < :ts OR (start_time = :ts AND id < :after_id))" if with_cursor else ""
    member = ("SELECT id, start_time FROM (SELECT id, start_time FROM activities"
              " WHERE user_id = :{author} AND status = 'completed'{vis}" + after +
              " ORDER BY start_time DESC, id DESC LIMIT :lim) AS s{n}")
    parts = [member.format(author="me", vis="", n=0)]
    for k in range(others):
        parts.append(member.format(author=f"a{k}", vis=" AND visibility IN ('public', 'followers')", n=k + 1))
    sql = (f"SELECT id, start_time FROM ({' UNION ALL '.join(parts)}) AS merged"
           " ORDER BY start_time DESC, id DESC LIMIT :lim")
    binds = [bindparam("ts", type_=UTCDateTime())] if with_cursor else []
    return text(sql).bindparams(*binds).columns(id=Integer, start_time=UTCDateTime)


@lru_cache(maxsize=2)
def _feed_sql_lateral(with_cursor: bool) -> TextClause:
    """PostgreSQL's form: one fixed statement (prepared once) with a LATERAL per author."""
    after = " AND (a.start_time < :ts OR (a.start_time = :ts AND a.id < :after_id))" if with_cursor else ""
    sql = ("SELECT x.id, x.start_time FROM"
           " (SELECT :me AS uid UNION ALL SELECT friend_id FROM friends WHERE user_id = :me"
           " AND friend_id NOT IN (SELECT user_id FROM blocks WHERE blocked_id = :me)) AS f"
           " CROSS JOIN LATERAL (SELECT a.id, a.start_time FROM activities a"
           " WHERE a.user_id = f.uid AND a.status = 'completed'"
           " AND (f.uid = :me OR a.visibility IN ('public', 'followers'))" + after +
           " ORDER BY a.start_time DESC, a.id DESC LIMIT :lim) AS x"
           " ORDER BY x.start_time DESC, x.id DESC LIMIT :lim")
    binds = [bindparam("ts", type_=UTCDateTime())] if with_cursor else []
    return text(sql).bindparams(*binds).columns(id=Integer, start_time=UTCDateTime)


def feed_page(s: Session, user_id: int, cursor: str | None = None, limit: int = PAGE_SIZE) -> FeedPage:
    """One page of ``user_id``'s feed, after ``cursor``."""
    limit = max(1, min(int(limit), MAX_PAGE_SIZE))
    after = decode_cursor(s, user_id, cursor) if cursor else None
    params = {"me": user_id, "lim": limit + 1}
    if after is not None:
        params["ts"], params["after_id"] = after
    if s.get_bind().dialect.name == "postgresql":
        query = _feed_sql_lateral(after is not None)
    else:
        blockers = set(s.scalars(blockers_of(user_id)))
        others = [other for other in followed_ids(s, user_id) if other not in blockers]
        params.update({f"a{k}": other for k, other in enumerate(others)})
        query = _feed_sql(len(others), after is not None)
    ids = s.execute(query, params).scalars().all()
    by_id = {a.id: a for a in s.scalars(select(Activity).where(Activity.id.in_(ids)))} if ids else {}
    items = [by_id[i] for i in ids if i in by_id]
    more = len(items) > limit
    items = items[:limit]
    return FeedPage(items, encode_cursor(items[-1]) if more and items else None)


def feed_item(a: Activity, shown: dict | None = None) -> dict:
    """An activity as the device protocol's feed answer has it (``docs/protocol.md``), with the
    figures its athlete's privacy settings let the viewer see (``shown``, from
    ``core.social.shown.shown_figures``) in place of the stored ones."""
    figures = {"start_time": a.start_time, "distance_m": a.distance_m, "moving_time_s": a.moving_time_s,
               "avg_pace_s_per_km": a.avg_pace_s_per_km, "avg_speed_mps": a.avg_speed_mps}
    if shown:
        figures = {k: shown.get(k) for k in figures}
    start = figures.pop("start_time")
    return {"activity_id": a.id, "athlete": a.user.name, "sport": a.sport, "title": a.title,
            "start_time": start.isoformat() if start else None, **figures}


def own_activities(s: Session, user_id: int, sport: str | None = None) -> list[Activity]:
    """The athlete's own completed activities (of one sport, if given), oldest first: what
    their stats page sums and draws."""
    q = select(Activity).where(Activity.user_id == user_id, Activity.status == "completed")
    if sport:
        q = q.where(Activity.sport == sport)
    return list(s.scalars(q.order_by(Activity.start_time, Activity.id)))
