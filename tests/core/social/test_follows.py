"""Following athletes and finding them by name, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from core.accounts.users import create_user
from core.social.follows import (
    SEARCH_MAX_CHARS,
    follow,
    followed_athletes,
    follower_count,
    following_among,
    like_pattern,
    search_athletes,
    unfollow,
)


@pytest.fixture
def people(session):
    """A viewer and athletes whose names hold LIKE's wildcards and its escape character; every
    name carries the test's tag, so a search for it finds only them."""
    t = f"f{uuid.uuid4().hex[:6]}"
    me = create_user(session, f"{t}_me", name=f"Me {t}")
    names = {
        "percent": (f"{t}_pct", f"Ann 100% {t}"),
        "plain": (f"{t}_plain", f"Ann 100 {t}"),
        "under": (f"{t}_a_b", f"Bo {t}"),
        "nounder": (f"{t}_axb", f"Cy {t}"),
        "backslash": (f"{t}_bs", f"Di back\\slash {t}"),
        "upper": (f"{t}_up", f"ZOE {t.upper()}"),
    }
    users = {key: create_user(session, u, name=n) for key, (u, n) in names.items()}
    return t, me, users


def names(found) -> list[str]:
    return [u.username for u, _ in found]


def test_search_finds_names_and_usernames_case_insensitively_leaving_out_the_viewer(session, people):
    t, me, users = people
    found = search_athletes(session, me.id, t)
    assert names(found) == sorted(u.username for u in users.values())  # by username, the viewer left out
    assert names(search_athletes(session, me.id, f"zoe {t}")) == [users["upper"].username]
    assert names(search_athletes(session, me.id, f"  {t}_UP  ")) == [users["upper"].username]
    assert search_athletes(session, me.id, "   ") == search_athletes(session, me.id, "") == []
    assert search_athletes(session, me.id, None) == []
    assert len(search_athletes(session, me.id, t, limit=2)) == 2


def test_wildcards_and_the_escape_character_are_taken_literally(session, people):
    t, me, users = people
    assert names(search_athletes(session, me.id, f"100% {t}")) == [users["percent"].username]
    assert names(search_athletes(session, me.id, "100%")) == [users["percent"].username]
    assert names(search_athletes(session, me.id, f"{t}_a_b")) == [users["under"].username]  # not _axb
    assert names(search_athletes(session, me.id, "back\\slash")) == [users["backslash"].username]
    assert search_athletes(session, me.id, f"{t}%pct") == []
    assert like_pattern("a%b_c\\d") == "%a\\%b\\_c\\\\d%"


def test_search_text_is_cut_to_the_longest_looked_for(session, people):
    t, me, _ = people
    long = create_user(session, f"{t}_long", name=f"{t} " + "y" * 100)
    # What follows the first SEARCH_MAX_CHARS characters is not looked for.
    text = f"{t} " + "y" * 100 + " and more"
    assert len(text.strip()) > SEARCH_MAX_CHARS
    assert names(search_athletes(session, me.id, text)) == [long.username]


def test_search_says_whom_the_viewer_follows(session, people):
    t, me, users = people
    follow(session, me, users["under"])
    follow(session, users["plain"], me)  # following the viewer is not the viewer following
    following = {u.username: f for u, f in search_athletes(session, me.id, t)}
    assert following == {u.username: u is users["under"] for u in users.values()}
    assert following_among(session, me.id, [u.id for u in users.values()]) == {users["under"].id}
    assert following_among(session, me.id, []) == set()


def test_follow_lists_name_whom_the_athlete_follows_by_name_and_count_their_followers(session, people):
    t, me, users = people
    assert followed_athletes(session, me.id) == [] and follower_count(session, me.id) == 0
    for key in ("upper", "percent", "under"):
        follow(session, me, users[key])
    follow(session, me, users["under"])  # idempotent
    follow(session, users["plain"], me)
    follow(session, users["backslash"], me)
    assert [u.name for u in followed_athletes(session, me.id)] == [f"Ann 100% {t}", f"Bo {t}", f"ZOE {t.upper()}"]
    assert follower_count(session, me.id) == 2
    assert follower_count(session, users["under"].id) == 1
    unfollow(session, users["plain"], me)
    unfollow(session, me, users["upper"])
    assert follower_count(session, me.id) == 1
    assert [u.id for u in followed_athletes(session, me.id)] == [users["percent"].id, users["under"].id]
