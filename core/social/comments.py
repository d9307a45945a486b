"""Comments on activities (the seed's Comments entity), and what kudos share with them: the
activity one may see (``visible_activity``) and ``SocialError``. Kudos themselves are in
``core.social.kudos``.

Anyone who may see an activity (``core.social.visibility``) may read its comments and comment
on it; a comment can be deleted by its author (and by the activity's owner, on their own
activity).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core.accounts.tables import User
from core.activities.lifecycle import NotFound
from core.activities.tables import Activity
from core.social.tables import Block, Comment
from core.social.visibility import blockers_of, viewable
from core.text import COMMENT_MAX_CHARS, TextRefused, check_length, clean


class SocialError(ValueError):
    """A comment or kudos that cannot be made; the message says why."""


@dataclass(frozen=True)
class CommentView:
    id: int
    activity_id: int
    user_id: int
    author: str
    text: str
    created_at: datetime


def visible_activity(s: Session, viewer_id: int, activity_id: int) -> Activity:
    """The activity if ``viewer_id`` may see it; NotFound otherwise (existence is not revealed)."""
    activity = viewable(s, viewer_id, activity_id)
    if activity is None:
        raise NotFound(f"no activity {activity_id}")
    return activity


def refuse_across_block(s: Session, user_id: int, activity: Activity) -> None:
    """A comment or kudos between two athletes one of whom blocked the other is refused."""
    if activity.user_id != user_id and s.scalar(select(Block.user_id).where(or_(
            and_(Block.user_id == user_id, Block.blocked_id == activity.user_id),
            and_(Block.user_id == activity.user_id, Block.blocked_id == user_id))).limit(1)) is not None:
        raise SocialError("you cannot comment on or give kudos to this athlete's activities")


def add_comment(s: Session, user: User, activity_id: int, text: str) -> Comment:
    """Comment on an activity one may see; an empty comment or one over COMMENT_MAX_CHARS is refused."""
    text = clean(text or "").strip()
    if not text:
        raise SocialError("a comment cannot be empty")
    try:
        check_length(text, COMMENT_MAX_CHARS, "a comment")
    except TextRefused as exc:
        raise SocialError(str(exc)) from None
    activity = visible_activity(s, user.id, activity_id)
    refuse_across_block(s, user.id, activity)
    comment = Comment(activity_id=activity_id, owner_id=activity.user_id, user_id=user.id, text=text)
    s.add(comment)
    s.flush()
    return comment


def delete_comment(s: Session, user: User, comment_id: int) -> bool:
    """Delete a comment of one's own (or on one's own activity); False if not allowed."""
    comment = s.get(Comment, comment_id)
    if comment is None:
        return False
    owner = s.scalar(select(Activity.user_id).where(Activity.id == comment.activity_id))
    if user.id not in (comment.user_id, owner):
        return False
    s.delete(comment)
    s.flush()
    return True


def comments_for(s: Session, activity_ids: list[int], viewer_id: int | None = None) -> dict[int, list[CommentView]]:
    """Comments of these activities, oldest first (the caller checked visibility), leaving
    out those of athletes who blocked ``viewer_id``, except on the viewer's own activities
    (where they may delete them)."""
    out: dict[int, list[CommentView]] = {i: [] for i in activity_ids}
    if not activity_ids:
        return out
    q = (select(Comment, User.name).join(User, User.id == Comment.user_id)
         .where(Comment.activity_id.in_(activity_ids)).order_by(Comment.created_at, Comment.id))
    if viewer_id is not None:
        own = select(Activity.id).where(Activity.user_id == viewer_id)
        q = q.where(or_(Comment.user_id.not_in(blockers_of(viewer_id)), Comment.activity_id.in_(own)))
    rows = s.execute(q).all()
    for c, name in rows:
        out[c.activity_id].append(CommentView(c.id, c.activity_id, c.user_id, name, c.text, c.created_at))
    return out
