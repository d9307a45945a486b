"""Who may see an activity: the owner, everyone for public ones, followers for theirs; and
who may watch one being recorded: the owner, and followers unless it is private. An athlete
the owner blocked sees none of them, public ones included.

``can_view`` answers for one activity, ``visible_filter`` and ``live_filter`` are the same
rules as SQL conditions for lists; nothing else spells them out."""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

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


def viewable(s: Session, viewer_id: int | None, activity_id: int) -> Activity | None:
    """The activity if ``viewer_id`` may see it, else None (whether it exists is not told)."""
    activity = s.get(Activity, activity_id)
    return activity if activity is not None and can_view(s, viewer_id, activity) else None
