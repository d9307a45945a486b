"""Followers by approval, removing followers and blocking, on SQLite and PostgreSQL: what a
requester, a removed follower and a blocked athlete can see and do."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from core.accounts.tables import User
from core.accounts.users import create_user, update_profile
from core.activities.lifecycle import NotFound
from core.activities.tables import Activity
from core.recommend.athletes import suggest_athletes
from core.social.comments import SocialError, add_comment, comments_for
from core.social.feed import feed_page
from core.social.follows import (
    FollowRefused,
    answer_request,
    approves_followers,
    block,
    blocked_athletes,
    blocks_between,
    follow,
    followed_ids,
    followers,
    pending_requests,
    remove_follower,
    requested_among,
    search_athletes,
    set_approval,
    unblock,
    unfollow,
)
from core.social.kudos import give_kudos
from core.social.leaderboards import database_board, redis_board, refresh_redis
from core.social.tables import Block, Friend
from core.social.visibility import can_view, live_filter, visible_filter

NOW = datetime.now(UTC)


def people(session, *roles):
    tag = uuid.uuid4().hex[:6]
    return [create_user(session, f"{tag}_{r}", name=f"{r.title()} {tag}") for r in roles]


def add(session, user, visibility="public", status="completed", hours_ago=1.0, metres=5000.0):
    a = Activity(user_id=user.id, sport="run", status=status, title=f"{user.username} {visibility}",
                 visibility=visibility, start_time=NOW - timedelta(hours=hours_ago), distance_m=metres,
                 shown_distance_m=metres)  # as for an athlete who hides nothing
    session.add(a)
    session.flush()
    return a


def listed(session, viewer_id, condition) -> set[int]:
    return set(session.scalars(select(Activity.id).where(condition)))


def test_an_athlete_who_approves_gets_requests_that_show_nothing_until_accepted(session):
    rosa, ann, bo = people(session, "rosa", "ann", "bo")
    only_followers = add(session, rosa, "followers")
    assert not approves_followers(rosa)
    set_approval(session, rosa, True)
    assert approves_followers(rosa)

    assert follow(session, ann, rosa) == "requested"
    assert follow(session, ann, rosa) == "requested"  # asking twice is one request
    assert follow(session, bo, rosa) == "requested"
    assert [u.id for u in pending_requests(session, rosa.id)] == [ann.id, bo.id]
    assert requested_among(session, ann.id, [rosa.id, bo.id]) == {rosa.id}
    # A request is not following: nothing but what everyone sees.
    assert followed_ids(session, ann.id) == []
    assert not can_view(session, ann.id, only_followers)
    assert only_followers.id not in {a.id for a in feed_page(session, ann.id).items}

    assert answer_request(session, rosa, ann.id, True)
    assert not answer_request(session, rosa, ann.id, True)  # answered already
    assert answer_request(session, rosa, bo.id, False)
    assert pending_requests(session, rosa.id) == []
    assert can_view(session, ann.id, only_followers)
    assert only_followers.id in {a.id for a in feed_page(session, ann.id).items}
    assert not can_view(session, bo.id, only_followers)
    assert [u.id for u in followers(session, rosa.id)] == [ann.id]


def test_a_request_can_be_withdrawn_and_turning_approval_off_accepts_whoever_waits(session):
    rosa, ann, bo = people(session, "rosa", "ann", "bo")
    set_approval(session, rosa, True)
    follow(session, ann, rosa)
    follow(session, bo, rosa)
    unfollow(session, bo, rosa)  # withdrawn
    assert [u.id for u in pending_requests(session, rosa.id)] == [ann.id]
    assert set_approval(session, rosa, False) == 1
    assert pending_requests(session, rosa.id) == []
    assert followed_ids(session, ann.id) == [rosa.id]
    assert followed_ids(session, bo.id) == []
    assert follow(session, bo, rosa) == "following"  # no approval now


def test_a_removed_follower_stops_seeing_followers_only_activities_and_may_ask_again(session):
    rosa, ann = people(session, "rosa", "ann")
    only_followers = add(session, rosa, "followers")
    follow(session, ann, rosa)
    assert can_view(session, ann.id, only_followers)
    assert remove_follower(session, rosa, ann.id)
    assert not remove_follower(session, rosa, ann.id)
    assert not can_view(session, ann.id, only_followers)
    assert only_followers.id not in listed(session, ann.id, visible_filter(ann.id))
    set_approval(session, rosa, True)
    assert follow(session, ann, rosa) == "requested"


def test_a_blocked_athlete_sees_nothing_of_the_blockers_and_can_neither_follow_comment_nor_give_kudos(session):
    rosa, mal, ann = people(session, "rosa", "mal", "ann")
    public, only_followers = add(session, rosa, "public"), add(session, rosa, "followers")
    recording = add(session, rosa, "public", status="active")
    follow(session, mal, rosa)
    follow(session, rosa, mal)
    set_approval(session, rosa, True)
    follow(session, ann, rosa)
    block(session, rosa, mal)
    block(session, rosa, mal)  # idempotent
    assert blocks_between(session, mal.id, rosa.id) and blocks_between(session, rosa.id, mal.id)
    assert [u.id for u in blocked_athletes(session, rosa.id)] == [mal.id]
    # Following ended both ways; another athlete's request is untouched.
    assert followed_ids(session, mal.id) == [] and followed_ids(session, rosa.id) == []
    assert [u.id for u in pending_requests(session, rosa.id)] == [ann.id]

    for a in (public, only_followers):
        assert not can_view(session, mal.id, a)
    assert listed(session, mal.id, visible_filter(mal.id)) & {public.id, only_followers.id} == set()
    assert recording.id not in listed(session, mal.id, live_filter(mal.id))
    assert can_view(session, ann.id, public) and can_view(session, None, public)  # others still see it
    with pytest.raises(FollowRefused, match="cannot be followed"):
        follow(session, mal, rosa)
    with pytest.raises(FollowRefused, match="unblock them first"):
        follow(session, rosa, mal)
    with pytest.raises(NotFound):
        add_comment(session, mal, public.id, "nice run")
    with pytest.raises(NotFound):
        give_kudos(session, mal, public.id)
    with pytest.raises(FollowRefused):
        block(session, rosa, rosa)
    # The blocked athlete does not find the blocker; the blocker still finds them.
    tag = rosa.username.split("_")[0]
    assert rosa.id not in {u.id for u, _ in search_athletes(session, mal.id, tag)}
    assert mal.id in {u.id for u, _ in search_athletes(session, rosa.id, tag)}

    unblock(session, rosa, mal)
    assert can_view(session, mal.id, public) and not can_view(session, mal.id, only_followers)
    assert followed_ids(session, mal.id) == []  # following does not come back


def test_a_blockers_comments_on_a_third_athletes_activity_are_hidden_from_the_blocked(session):
    rosa, mal, ann = people(session, "rosa", "mal", "ann")
    anns = add(session, ann, "public")
    add_comment(session, rosa, anns.id, "lovely")
    add_comment(session, mal, anns.id, "agreed")
    block(session, rosa, mal)
    assert [c.text for c in comments_for(session, [anns.id], mal.id)[anns.id]] == ["agreed"]
    assert [c.text for c in comments_for(session, [anns.id], ann.id)[anns.id]] == ["lovely", "agreed"]
    assert [c.text for c in comments_for(session, [anns.id])[anns.id]] == ["lovely", "agreed"]


def test_leaderboards_leave_the_blocker_out_for_the_blocked_and_keep_the_boards_ranks(session, redis_client):
    rosa, mal, ann = people(session, "rosa", "mal", "ann")
    for who, metres in ((rosa, 1e9), (ann, 9e8), (mal, 8e8)):  # far beyond anyone else's all-time total
        add(session, who, metres=metres)
    block(session, rosa, mal)
    boards = [database_board(session, "all", "run", viewer_id=mal.id, limit=2)]
    refresh_redis(session, redis_client)
    boards.append(redis_board(session, redis_client, "all", "run", viewer_id=mal.id, limit=2))
    for b in boards:
        assert [(e.rank, e.user_id) for e in b.entries[:1]] == [(2, ann.id)], b.source
        assert rosa.id not in {e.user_id for e in b.entries}
        assert (b.me.rank, b.me.user_id) == (3, mal.id)
    seen_by_ann = database_board(session, "all", "run", viewer_id=ann.id, limit=2)
    assert [e.user_id for e in seen_by_ann.entries] == [rosa.id, ann.id]


def test_suggestions_leave_out_athletes_kept_apart_and_those_already_asked(session):
    me, friend, blocker, blocked, asked, other = people(session, "me", "friend", "blocker", "blocked", "asked", "x")
    follow(session, me, friend)
    for u in (blocker, blocked, asked, other):
        follow(session, friend, u)
    block(session, blocker, me)
    block(session, me, blocked)
    set_approval(session, asked, True)
    follow(session, me, asked)
    assert {s.user.id for s in suggest_athletes(session, me.id)} == {other.id}


def test_neither_side_of_a_block_comments_or_gives_kudos_and_an_owner_sees_every_comment_on_their_own(session):
    rosa, mal = people(session, "rosa", "mal")
    rosas, mals = add(session, rosa), add(session, mal)
    add_comment(session, rosa, mals.id, "before the block")
    block(session, rosa, mal)
    for who, activity in ((rosa, mals), (mal, rosas)):
        with pytest.raises((SocialError, NotFound)):
            add_comment(session, who, activity.id, "hello")
        with pytest.raises((SocialError, NotFound)):
            give_kudos(session, who, activity.id)
    # On their own activity mal still sees (and so may delete) what the blocker wrote.
    assert [c.text for c in comments_for(session, [mals.id], mal.id)[mals.id]] == ["before the block"]


def test_a_request_from_someone_kept_apart_is_neither_listed_nor_accepted(session):
    rosa, mal = people(session, "rosa", "mal")
    set_approval(session, rosa, True)
    follow(session, mal, rosa)
    session.add(Block(user_id=rosa.id, blocked_id=mal.id))  # as a block racing the request could leave it
    session.flush()
    assert pending_requests(session, rosa.id) == []
    assert not answer_request(session, rosa, mal.id, True)
    assert set_approval(session, rosa, False) == 0
    assert followed_ids(session, mal.id) == []


def test_search_text_with_a_nul_character_finds_without_failing(session):
    rosa, = people(session, "rosa")
    assert search_athletes(session, rosa.id, "\x00") == []
    assert [u.id for u, _ in search_athletes(session, people(session, "x")[0].id, rosa.username + "\x00")] == [rosa.id]


def _in_thread(fn) -> tuple[threading.Thread, list]:
    """Run ``fn`` in a thread of its own; what it raised ends up in the list."""
    raised: list = []

    def run():
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - handed back to the test to assert on
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, raised


@pytest.mark.parametrize("first", ["follow", "request", "block"])
def test_a_block_waits_for_a_follow_or_request_under_way_and_then_ends_it(postgres_engine, first):
    """PostgreSQL: B follows (or asks to follow, or blocks) A in a transaction still open when
    A blocks B in another; the block waits for it, and then nothing of B's follow remains,
    nor a second block row."""
    Sessions = sessionmaker(postgres_engine, expire_on_commit=False)
    with Sessions() as s, s.begin():
        a, b = people(s, "a", "b")
        if first == "request":
            set_approval(s, a, True)
        hidden = add(s, a, "followers")
    with Sessions() as t1:
        with t1.begin():
            ua, ub = t1.get(User, a.id), t1.get(User, b.id)
            if first == "block":
                block(t1, ua, ub)
            else:
                assert follow(t1, ub, ua) == ("requested" if first == "request" else "following")

            def other_request():
                with Sessions() as t2, t2.begin():
                    block(t2, t2.get(User, a.id), t2.get(User, b.id))

            thread, raised = _in_thread(other_request)
            thread.join(0.5)
            assert thread.is_alive()  # waiting for the pair's lock
        thread.join(30)
    assert not thread.is_alive() and raised == []
    with Sessions() as s:
        assert s.get(Friend, (b.id, a.id)) is None
        assert pending_requests(s, a.id) == []
        assert s.scalar(select(Block.user_id).where(Block.user_id == a.id)) == a.id
        assert hidden.id not in {x.id for x in feed_page(s, b.id).items}


def test_a_settings_save_keeps_approval_turned_on_meanwhile(postgres_engine):
    """PostgreSQL: a device saving its cue preferences from a user row read before approval
    was turned on does not turn approval off again."""
    Sessions = sessionmaker(postgres_engine, expire_on_commit=False)
    with Sessions() as s, s.begin():
        (a,) = people(s, "a")
    with Sessions() as t1, t1.begin():
        stale = t1.get(User, a.id)
        assert not approves_followers(stale)
        with Sessions() as t2, t2.begin():
            set_approval(t2, t2.get(User, a.id), True)
        update_profile(t1, stale, units="imperial")
    with Sessions() as s:
        settings = s.get(User, a.id).settings
        assert settings["approve_followers"] is True and settings["units"] == "imperial"


def test_a_feed_leaves_out_a_blocker_even_if_a_follow_row_survived(session):
    rosa, mal = people(session, "rosa", "mal")
    hidden = add(session, rosa, "followers")
    session.add_all([Block(user_id=rosa.id, blocked_id=mal.id), Friend(user_id=mal.id, friend_id=rosa.id)])
    session.flush()
    assert hidden.id not in {x.id for x in feed_page(session, mal.id).items}
