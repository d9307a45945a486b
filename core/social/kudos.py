"""Kudos on activities."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.accounts.tables import User
from core.social.comments import SocialError, refuse_across_block, visible_activity
from core.social.tables import Kudos


def give_kudos(s: Session, user: User, activity_id: int) -> None:
    activity = visible_activity(s, user.id, activity_id)
    refuse_across_block(s, user.id, activity)
    if activity.user_id == user.id:
        raise SocialError("kudos are for other athletes' activities")
    if s.get(Kudos, (activity_id, user.id)) is None:
        s.add(Kudos(activity_id=activity_id, user_id=user.id, owner_id=activity.user_id))
        s.flush()


def take_back_kudos(s: Session, user: User, activity_id: int) -> None:
    s.execute(delete(Kudos).where(Kudos.activity_id == activity_id, Kudos.user_id == user.id))


def kudos_for(s: Session, viewer_id: int, activity_ids: list[int]) -> dict[int, tuple[int, bool]]:
    """Per activity: how many kudos, and whether the viewer gave one."""
    out = {i: (0, False) for i in activity_ids}
    if not activity_ids:
        return out
    counts = dict(s.execute(select(Kudos.activity_id, func.count()).where(Kudos.activity_id.in_(activity_ids))
                            .group_by(Kudos.activity_id)).all())
    mine = set(s.scalars(select(Kudos.activity_id).where(Kudos.activity_id.in_(activity_ids),
                                                         Kudos.user_id == viewer_id)))
    for i in activity_ids:
        out[i] = (int(counts.get(i, 0)), i in mine)
    return out
