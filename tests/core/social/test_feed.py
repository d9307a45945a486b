"""News feed: order, pagination and visibility, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest

from core.accounts.users import create_user
from core.activities.tables import Activity
from core.social.feed import CursorError, feed_page
from core.social.follows import follow
from core.social.visibility import can_view

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def add(session, user, hours_ago, visibility="public", status="completed"):
    a = Activity(user_id=user.id, sport="run", status=status, title=f"{user.username} {hours_ago}",
                 visibility=visibility, start_time=NOW - timedelta(hours=hours_ago), distance_m=5000.0)
    session.add(a)
    session.flush()
    return a


@pytest.fixture
def users(session):
    me, friend, stranger = (create_user(session, n) for n in ("me_1", "friend_1", "stranger_1"))
    follow(session, me, friend)
    return me, friend, stranger


def test_feed_shows_own_and_followed_completed_activities_newest_first(session, users):
    """Mine and my friend's, newest first; a stranger's and unfinished ones are absent."""
    me, friend, stranger = users
    a1 = add(session, me, 5)
    a2 = add(session, friend, 1)
    a3 = add(session, friend, 3)
    add(session, stranger, 2)
    add(session, friend, 0.5, status="active")
    page = feed_page(session, me.id)
    assert [a.id for a in page.items] == [a2.id, a3.id, a1.id]
    assert page.next_cursor is None


def test_visibility_rules(session, users):
    """Friends' private ones never show; followers-only shows to followers; mine all show."""
    me, friend, stranger = users
    mine_private = add(session, me, 1, "private")
    theirs_private = add(session, friend, 2, "private")
    theirs_followers = add(session, friend, 3, "followers")
    ids = [a.id for a in feed_page(session, me.id).items]
    assert mine_private.id in ids and theirs_followers.id in ids
    assert theirs_private.id not in ids
    assert not can_view(session, stranger.id, theirs_followers)
    assert can_view(session, me.id, theirs_followers)
    assert not can_view(session, me.id, theirs_private)
    assert not can_view(session, None, theirs_followers)


def test_pages_follow_on_without_gaps_or_repeats(session, users):
    """Walking the cursor returns every activity once, in order."""
    me, friend, _ = users
    made = [add(session, friend if i % 2 else me, i) for i in range(47)]
    seen, cursor = [], None
    while True:
        page = feed_page(session, me.id, cursor=cursor, limit=10)
        seen += [a.id for a in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [a.id for a in made]


def test_activities_with_the_same_start_time_are_ordered_by_id(session, users):
    """Ties on start time break by id, so the cursor never skips one."""
    me, friend, _ = users
    same = [add(session, friend, 2) for _ in range(5)]
    first = feed_page(session, me.id, limit=2)
    second = feed_page(session, me.id, cursor=first.next_cursor, limit=10)
    assert [a.id for a in first.items + second.items] == sorted((a.id for a in same), reverse=True)


def test_a_forged_cursor_is_refused(session, users):
    """A cursor that is not ours raises CursorError."""
    with pytest.raises(CursorError):
        feed_page(session, users[0].id, cursor="not-a-cursor")


def test_unfollowing_removes_their_activities_from_the_feed(session, users):
    """After unfollow, the friend's followers-only and public activities leave my feed."""
    from core.social.follows import unfollow

    me, friend, _ = users
    theirs = add(session, friend, 1)
    assert theirs.id in [a.id for a in feed_page(session, me.id).items]
    unfollow(session, me, friend)
    assert theirs.id not in [a.id for a in feed_page(session, me.id).items]


def test_the_visibility_filter_agrees_with_can_view(session, users):
    """The SQL filter used for lists selects exactly what can_view allows."""
    from sqlalchemy import select

    from core.social.visibility import visible_filter

    me, friend, stranger = users
    made = [add(session, u, h, v) for u in (me, friend, stranger) for h, v in
            ((1, "public"), (2, "followers"), (3, "private"))]
    ids = {a.id for a in made}
    for viewer in (me, friend, stranger):
        listed = set(session.scalars(select(Activity.id).where(visible_filter(viewer.id), Activity.id.in_(ids))))
        allowed = {a.id for a in made if can_view(session, viewer.id, a)}
        assert listed == allowed
