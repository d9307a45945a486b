"""Comments and kudos follow the activity's visibility; only authors (and owners) delete."""

from __future__ import annotations

import random
import time

import pytest

from core.accounts.users import create_user
from core.activities.imports import record_track
from core.activities.lifecycle import NotFound
from core.social.comments import SocialError, add_comment, comments_for, delete_comment
from core.social.follows import follow
from core.social.kudos import give_kudos, kudos_for
from core.synthetic.tracks import synthetic_track


@pytest.fixture
def world(session):
    ann, ben, cat = (create_user(session, n, n.title()) for n in ("ann_s", "ben_s", "cat_s"))
    follow(session, ben, ann)
    rng = random.Random(4)

    def make(visibility):
        return record_track(session, ann, synthetic_track(rng, "run", time.time() - 3600, 46, 14, 15, 3.0),
                            visibility=visibility, source="demo")
    return ann, ben, cat, make("public"), make("followers"), make("private")


def test_comment_add_show_and_delete_own_only(session, world):
    ann, ben, cat, public, followers, private = world
    c1 = add_comment(session, ben, public.id, "  Great run!  ")
    c2 = add_comment(session, cat, public.id, "<img src=x onerror=alert(1)>")
    shown = comments_for(session, [public.id])[public.id]
    assert [(c.author, c.text) for c in shown] == [("Ben_S", "Great run!"), ("Cat_S", "<img src=x onerror=alert(1)>")]
    assert not delete_comment(session, cat, c1.id)  # not hers
    assert delete_comment(session, ben, c1.id)
    assert delete_comment(session, ann, c2.id)  # the activity's owner may tidy up
    assert comments_for(session, [public.id])[public.id] == []


def test_visibility_applies_to_comments_and_kudos(session, world):
    ann, ben, cat, public, followers, private = world
    add_comment(session, ben, followers.id, "seen by a follower")
    with pytest.raises(NotFound):
        add_comment(session, cat, followers.id, "not a follower")
    for other in (ben, cat):
        with pytest.raises(NotFound):
            add_comment(session, other, private.id, "private")
        with pytest.raises(NotFound):
            give_kudos(session, other, private.id)
    with pytest.raises(SocialError):
        add_comment(session, ben, public.id, "   ")
    with pytest.raises(SocialError):
        add_comment(session, ben, public.id, "x" * 1001)


def test_kudos_once_each_and_not_for_yourself(session, world):
    ann, ben, cat, public, *_ = world
    give_kudos(session, ben, public.id)
    give_kudos(session, ben, public.id)
    give_kudos(session, cat, public.id)
    assert kudos_for(session, ben.id, [public.id]) == {public.id: (2, True)}
    assert kudos_for(session, ann.id, [public.id]) == {public.id: (2, False)}
    with pytest.raises(SocialError):
        give_kudos(session, ann, public.id)
