"""The ingest server's database side: every call runs on one worker thread.

One thread owns the database so SQLite sees a single writer and the order of status
changes and point commits is the order they were submitted in. ``commit_batches`` writes
the points of many connections in one transaction: the group commit.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.accounts import user_for_token
from core.activities import (
    OPEN_STATUSES,
    ActivityClosed,
    NotFound,
    change_status,
    create_activity,
    get_owned_activity,
    load_track,
)
from core.db import make_engine, make_sessionmaker
from core.feed import feed_page
from core.live import CuePrefs
from core.models import Activity, RoutePoint, User
from core.schema import migrate


@dataclass
class Identity:
    """Who a connection acts for."""

    user_id: int
    username: str
    cue_prefs: CuePrefs


@dataclass
class ActivityInfo:
    """What the server keeps in memory about an activity it has seen."""

    id: int
    user_id: int
    sport: str
    status: str


class Store:
    """Database operations for the ingest server, run on a single worker thread."""

    def __init__(self, database_url: str | None = None):
        self.engine = make_engine(database_url)
        migrate(self.engine)
        self.Session = make_sessionmaker(self.engine)
        self.dialect = self.engine.dialect.name
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db")

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.engine.dispose()

    def authenticate(self, token: str) -> Identity | None:
        with self.Session() as s, s.begin():
            user = user_for_token(s, token)
            if user is None:
                return None
            return Identity(user.id, user.username, CuePrefs.from_settings(user.settings))

    def create(self, user_id: int, sport: str, title: str | None, visibility: str | None,
               client_ref: str | None) -> ActivityInfo:
        with self.Session() as s, s.begin():
            user = s.get(User, user_id)
            a = create_activity(s, user, sport, title=title, visibility=visibility, client_ref=client_ref)
            return ActivityInfo(a.id, a.user_id, a.sport, a.status)

    def activity(self, activity_id: int, user_id: int) -> tuple[ActivityInfo, list[tuple]]:
        """The activity (NotFound unless the user's own) and its stored points in time order."""
        with self.Session() as s:
            a = get_owned_activity(s, activity_id, user_id)
            track = load_track(s, a)
            points = list(zip(track.t.tolist(), track.lat.tolist(), track.lon.tolist()))
            return ActivityInfo(a.id, a.user_id, a.sport, a.status), points

    def change_status(self, activity_id: int, user_id: int, command: str, at: float | None) -> ActivityInfo:
        with self.Session() as s, s.begin():
            a = get_owned_activity(s, activity_id, user_id, lock=self.dialect == "postgresql")
            change_status(s, a, command, at=at)
            return ActivityInfo(a.id, a.user_id, a.sport, a.status)

    def commit_batches(self, batches: list[tuple[int, list[dict]]]) -> list[object]:
        """Insert many batches in one transaction; per batch, the seqs newly stored or an error.

        A batch for an activity that is no longer open gets ActivityClosed and stores nothing.
        """
        results: list[object] = [None] * len(batches)
        insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        stmt = (insert(RoutePoint).on_conflict_do_nothing(index_elements=["activity_id", "seq"])
                .returning(RoutePoint.activity_id, RoutePoint.seq))
        ids = {activity_id for activity_id, _ in batches}
        with self.Session() as s, s.begin():
            statuses = dict(s.execute(select(Activity.id, Activity.status).where(Activity.id.in_(ids))).all())
            rows = []
            for k, (activity_id, batch_rows) in enumerate(batches):
                status = statuses.get(activity_id)
                if status is None:
                    results[k] = NotFound(f"no activity {activity_id}")
                elif status not in OPEN_STATUSES:
                    results[k] = ActivityClosed(f"activity {activity_id} is {status}: it takes no more points")
                else:
                    results[k] = set()
                    rows.extend(batch_rows)
            stored: dict[int, set[int]] = {}
            if rows:
                for activity_id, seq in s.execute(stmt, rows).all():
                    stored.setdefault(activity_id, set()).add(seq)
        for k, (activity_id, batch_rows) in enumerate(batches):
            if isinstance(results[k], set):
                mine = stored.get(activity_id, set())
                results[k] = {r["seq"] for r in batch_rows} & mine
        return results

    def feed(self, user_id: int, cursor: str | None, limit: int) -> dict:
        with self.Session() as s:
            page = feed_page(s, user_id, cursor=cursor, limit=limit)
            items = [{
                "activity_id": a.id, "athlete": a.user.name, "sport": a.sport, "title": a.title,
                "start_time": a.start_time.isoformat() if a.start_time else None,
                "distance_m": a.distance_m, "moving_time_s": a.moving_time_s,
                "avg_pace_s_per_km": a.avg_pace_s_per_km, "avg_speed_mps": a.avg_speed_mps,
            } for a in page.items]
            return {"items": items, "next_cursor": page.next_cursor}

    def save_cues(self, user_id: int, prefs: CuePrefs) -> None:
        with self.Session() as s, s.begin():
            user = s.get(User, user_id)
            settings = dict(user.settings or {})
            settings["cues"] = prefs.to_settings()
            user.settings = settings
