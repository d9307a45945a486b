"""Who may see an activity: the owner, everyone for public ones, followers for theirs; and
who may watch one being recorded: the owner, and followers unless it is private. An athlete
the owner blocked sees none of them, public ones included.

``can_view`` answers for one activity, ``visible_filter`` and ``live_filter`` are the same
rules as SQL conditions for lists; nothing else spells them out. A moderator may also look
at any completed activity (``can_review``): the moderators' page links to flagged ones their
athletes may have made private."""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core.accounts.tables import User
from core.activities.tables import Activity
from core.social.tables import Block, Friend


def can_view(s: Session, viewer_id: int | None, activity: Activity) -> bool:
    """Whether ``viewer_id`` may see ``activity`` (visibility and follow graph)."""
    if viewer_id is not None and activity.user_id == viewer_id:
        return True
    if activity.status != "completed":
        return False
    if viewer_id is not None and s.get(Block, (activity.user_id, viewer_id)) is not None:
        return False
    if activity.visibility == "public":
        return True
    if activity.visibility == "followers" and viewer_id is not None:
        return s.get(Friend, (viewer_id, activity.user_id)) is not None
    return False


def blockers_of(viewer_id: int):
    """A SQL select of the athletes who blocked ``viewer_id``."""
    return select(Block.user_id).where(Block.blocked_id == viewer_id)


def visible_filter(viewer_id: int):
    """A SQL condition: activities ``viewer_id`` may see (for lists beyond the feed)."""
    follows = select(Friend.friend_id).where(Friend.user_id == viewer_id)
    return or_(
        Activity.user_id == viewer_id,
        and_(Activity.status == "completed", Activity.user_id.not_in(blockers_of(viewer_id)),
             or_(Activity.visibility == "public",
                 and_(Activity.visibility == "followers", Activity.user_id.in_(follows)))),
    )


def live_filter(viewer_id: int):
    """A SQL condition: activities ``viewer_id`` may watch while they are recorded (the Live
    page): their own, and those of athletes they follow unless private."""
    follows = select(Friend.friend_id).where(Friend.user_id == viewer_id)
    return or_(Activity.user_id == viewer_id,
               and_(Activity.user_id.in_(follows), Activity.visibility != "private",
                    Activity.user_id.not_in(blockers_of(viewer_id))))


def can_review(s: Session, viewer_id: int | None, activity: Activity) -> bool:
    """Whether ``viewer_id`` is a moderator and ``activity`` completed: a moderator opens any
    activity the moderators' page lists, whoever its athlete shares it with (one made private
    after its flag, too). Only to look at, with what privacy zones hide still hidden (the
    viewer is not its athlete); comments and kudos go by ``can_view``."""
    if viewer_id is None or activity.status != "completed":
        return False
    viewer = s.get(User, viewer_id)
    return viewer is not None and viewer.role == "moderator"


def viewable(s: Session, viewer_id: int | None, activity_id: int, review: bool = False) -> Activity | None:
    """The activity if ``viewer_id`` may see it (or, with ``review``, look at it as a
    moderator: ``can_review``), else None (whether it exists is not told)."""
    activity = s.get(Activity, activity_id)
    return activity if activity is not None and may_see(s, viewer_id, activity, review) else None


def may_see(s: Session, viewer_id: int | None, activity: Activity, review: bool = False) -> bool:
    """``can_view``, or with ``review`` also ``can_review``."""
    return can_view(s, viewer_id, activity) or (review and can_review(s, viewer_id, activity))
