"""Every row of an activity carries its athlete, so that a distributed PostgreSQL (Citus)
can keep an athlete's activities, points and everything about them together: keys and
foreign keys with the athlete in them, rows that name another athlete refused, and the
references that keep no foreign key cleared when their activity goes. Real databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from core.accounts.users import create_user
from core.activities.lifecycle import delete_activity
from core.activities.tables import Activity, ActivityEvent
from core.challenges.tables import BadgeAward, Challenge
from core.jobs.deletion import delete_account
from core.routes.matching import stale
from core.routes.tables import Route
from core.social.comments import add_comment
from core.social.kudos import give_kudos
from core.social.tables import Comment, Kudos
from core.storage.base import utcnow
from core.storage.schema import downgrade, migrate
from tests.conftest import database_of_its_own
from tests.core.storage.tiers_common import new_activity, synthetic, user_of

# table: its column holding the activity's athlete
OWNED = {"activity_events": "user_id", "activity_flags": "user_id", "moderation_decisions": "user_id",
         "scoring_failures": "user_id", "device_tracks": "user_id", "fix_hints": "user_id",
         "route_activities": "user_id", "comments": "owner_id", "kudos": "owner_id",
         "route_points": "user_id", "pending_crops": "user_id", "activity_originals": "user_id"}
# Rows of one athlete that name an activity without a foreign key.
UNREFERENCED = {"badge_awards": "user_id", "challenges": "user_id", "badge_activities": "user_id"}
SET_NULL = {"badge_awards": "activity_id", "challenges": "completed_by", "routes": "representative_id"}


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_every_table_that_refers_to_an_activity_refers_to_it_with_its_athlete(tmp_path, kind):
    """No foreign key to activities leaves the athlete out, and on PostgreSQL every key and
    unique index of activities and of the tables about them holds the athlete's column, as
    Citus requires of tables distributed on it. SQLite keeps its integer keys (its row ids)."""
    with database_of_its_own(kind, tmp_path, "distkeys") as Session:
        schema = inspect(Session.kw["bind"])
        referring = {}
        for table in schema.get_table_names():
            if table.startswith("route_points_"):  # route_points' partitions, keyed as it is
                continue
            for key in schema.get_foreign_keys(table):
                if key["referred_table"] == "activities":
                    referring[table] = (key["constrained_columns"], key["referred_columns"])
        keyed = {t: (["activity_id", owner], ["id", "user_id"]) for t, owner in OWNED.items()}
        if kind != "postgres":
            # SQLite, never distributed, keeps the references that are set to NULL (the code
            # clears them as well): rebuilding routes there would empty what refers to it.
            assert referring == keyed | {t: ([c], ["id"]) for t, c in SET_NULL.items()}
            return
        assert referring == keyed
        distributed = OWNED | UNREFERENCED | {"activities": "user_id"}
        for table, owner in distributed.items():
            assert owner in schema.get_pk_constraint(table)["constrained_columns"], table
            for index in schema.get_indexes(table):
                assert not index["unique"] or owner in index["column_names"], (table, index)
        assert set(schema.get_pk_constraint("activities")["constrained_columns"]) == {"id", "user_id"}


def _cheered(Session) -> tuple[int, int, int, int]:
    """A public activity another athlete commented on and gave kudos to: the activity, its
    athlete, the fan and the comment."""
    a = new_activity(Session, synthetic(20))
    with Session() as s, s.begin():
        activity = s.get(Activity, a)
        activity.visibility = "public"
        fan = create_user(s, "fan", "Fan")
        s.flush()
        comment = add_comment(s, fan, a, "nice run")
        give_kudos(s, fan, a)
        return a, activity.user_id, fan.id, comment.id


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_row_that_names_another_athlete_than_its_activitys_is_refused(tmp_path, kind):
    """The social code writes the activity's athlete (a comment's and kudos' owner is not
    their author); a row that names someone else is refused by the database."""
    with database_of_its_own(kind, tmp_path, "distrows") as Session:
        a, owner, fan_id, comment_id = _cheered(Session)
        with Session() as s:
            assert (s.get(Comment, comment_id).owner_id, s.get(Kudos, (a, fan_id)).owner_id) == (owner, owner)
            assert set(s.scalars(select(ActivityEvent.user_id).where(ActivityEvent.activity_id == a))) <= {owner}
        for row in (Comment(activity_id=a, owner_id=fan_id, user_id=fan_id, text="mine now"),
                    ActivityEvent(activity_id=a, user_id=fan_id, command="pause", status="paused", at=0.0)):
            with Session() as s:
                s.add(row)
                with pytest.raises(IntegrityError):
                    s.flush()
                s.rollback()
        # Deleting the activity still takes its rows with it.
        with Session() as s, s.begin():
            delete_activity(s, s.get(Activity, a))
        with Session() as s:
            assert s.scalar(select(Comment.id).where(Comment.activity_id == a)) is None
            assert s.scalar(select(Kudos.user_id).where(Kudos.activity_id == a)) is None


def _named(Session, activity_id: int, user_id: int) -> dict[str, int]:
    """A badge, a challenge and a route that name the activity; their ids."""
    now = utcnow()
    with Session() as s, s.begin():
        badge = BadgeAward(user_id=user_id, code="first_run", activity_id=activity_id, earned_at=now)
        challenge = Challenge(user_id=user_id, week=f"{now:%G-W%V}", kind="sessions", target=3.0, usual=2.0,
                              starts_at=now - timedelta(days=1), deadline=now + timedelta(days=6),
                              progress=3.0, status="completed", completed_at=now, completed_by=activity_id)
        route = Route(kind="loop", shape=b"", representative_id=activity_id, path_m=1000.0)
        s.add_all([badge, challenge, route])
        s.flush()
        return {"badge": badge.id, "challenge": challenge.id, "route": route.id}


def _still_named(Session, ids: dict[str, int]) -> list:
    with Session() as s:
        return [s.scalar(select(BadgeAward.activity_id).where(BadgeAward.id == ids["badge"])),
                s.scalar(select(Challenge.completed_by).where(Challenge.id == ids["challenge"])),
                s.get(Route, ids["route"]).representative_id]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_deleting_activities_clears_the_references_that_keep_no_foreign_key(tmp_path, kind):
    """A badge's earning activity, a challenge's completing one and a route's representative
    become NULL when the activity is deleted, by the athlete or with their account, as the
    jobs that own them expect (the badges are counted again, the route is worked out anew)."""
    with database_of_its_own(kind, tmp_path, "distrefs") as Session:
        a, b = new_activity(Session, synthetic(20)), new_activity(Session, synthetic(20))
        ids_a, ids_b = _named(Session, a, user_of(Session, a)), _named(Session, b, user_of(Session, b))
        kept = new_activity(Session, synthetic(20))
        ids_kept = _named(Session, kept, user_of(Session, kept))
        with Session() as s, s.begin():
            delete_activity(s, s.get(Activity, a))
        assert _still_named(Session, ids_a) == [None, None, None]
        # An activity deleted by SQL alone: PostgreSQL leaves its route's representative
        # behind, which the matcher's audit finds (SQLite's foreign key clears it).
        gone = new_activity(Session, synthetic(20))
        ids_gone = _named(Session, gone, user_of(Session, gone))
        with Session() as s, s.begin():
            s.execute(text("DELETE FROM activities WHERE id = :a"), {"a": gone})
        with Session() as s:
            if kind == "postgres":
                assert ids_gone["route"] in stale(s, 10)
            else:
                assert s.get(Route, ids_gone["route"]).representative_id is None
        assert delete_account(Session, user_of(Session, b))["deleted"]
        with Session() as s:
            assert s.get(Route, ids_b["route"]).representative_id is None
        assert _still_named(Session, ids_kept) == [kept, kept, kept]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_upgrade_gives_every_row_its_activitys_athlete(tmp_path, kind):
    """Rows written before the tables held the athlete get their activity's; on SQLite, rows
    whose activity is gone (its ingest connection checks activities itself) are left behind.
    The downgrade brings the old keys back."""
    with database_of_its_own(kind, tmp_path, "distup") as Session:
        engine = Session.kw["bind"]
        a, owner, _, _ = _cheered(Session)
        with Session() as s, s.begin():
            s.add(ActivityEvent(activity_id=a, user_id=owner, command="pause", status="paused", at=0.0))
        downgrade(engine, "0026")
        if kind == "sqlite":
            raw = engine.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA foreign_keys=OFF")
                raw.driver_connection.execute("INSERT INTO comments (activity_id, user_id, text, created_at) "
                                              "VALUES (999999, 1, 'orphan', '2026-01-01')")
                raw.commit()
            finally:
                raw.invalidate()
        migrate(engine)
        with engine.connect() as conn:
            owners = {table: set(conn.execute(text(f"SELECT {column} FROM {table} WHERE activity_id = :a"),
                                              {"a": a}).scalars())
                      for table, column in (("comments", "owner_id"), ("kudos", "owner_id"),
                                            ("activity_events", "user_id"))}
            assert owners == {"comments": {owner}, "kudos": {owner}, "activity_events": {owner}}
            assert conn.execute(text("SELECT count(*) FROM comments WHERE activity_id = 999999")).scalar() == 0


# What the models declare and what the migrations make differ on purpose in these alone.
EXPECTED_DRIFT = {
    # PostgreSQL: the unique (id, user_id) the models declare is the primary key itself.
    "postgres": {("add_index", "activities", "uq_activities_id_user_id")},
    # SQLite keeps the three references that are set to NULL (see the first test).
    "sqlite": {("remove_fk", t, f"fk_{t}_{c}_activities") for t, c in SET_NULL.items()},
}


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_models_and_the_migrated_schema_differ_only_where_meant_to(tmp_path, kind):
    """Alembic's comparison of the models with a database at head finds nothing but the
    differences this schema means to have, so a migration generated from the models
    would not undo them (rebuilding routes on SQLite, say)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import core.anomaly.tables  # noqa: F401  (every table, as the migrations' environment has them)
    import core.devices.tables  # noqa: F401
    import core.recommend.tables  # noqa: F401
    import core.storage.points  # noqa: F401
    from core.storage.base import Base

    with database_of_its_own(kind, tmp_path, "drift") as Session:
        with Session.kw["bind"].connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    found = set()
    for change in diff:
        op = change[0] if isinstance(change, tuple) else change[0][0]
        item = change[1] if isinstance(change, tuple) else change[0][1]
        table = getattr(item, "table", None)
        name = getattr(table, "name", None) or getattr(item, "name", None)
        if op == "remove_table" and name.startswith("route_points_"):
            continue  # route_points' partitions, made by the worker as they are needed
        found.add((op, name, getattr(item, "name", None)))
    assert found == EXPECTED_DRIFT[kind], diff
