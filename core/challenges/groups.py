"""Group challenges among athletes who follow each other: the most distance this month, or
everyone doing so many activities this week, each with its own small board.

Only athletes who follow each other can be invited (at most MAX_INVITED, by their
creator); an invitation is joined (while the two still follow each other) or declined, and
a member can leave. The board reads the members' activities of the period that count
(scored, completed, not held for review) and that the viewer may see (public, or
followers-only of athletes they follow): a private activity adds nothing, so the board
tells nobody about it, and each viewer's board shows only what they could see anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from core.accounts.tables import User
from core.activities.tables import Activity
from core.anomaly.tables import ActivityFlag
from core.challenges.awards import counted_figure
from core.challenges.badges import time_zone
from core.challenges.personal import current_week, week_bounds
from core.challenges.tables import GROUP_KINDS, GroupChallenge, GroupMember
from core.social.tables import Friend
from core.social.visibility import blockers_of, visible_filter

MAX_INVITED = 20
MAX_SESSIONS = 14
MAX_OPEN_CREATED = 5  # groups an athlete may have running at once as their creator
KIND_WORDS = {"most_distance": "most distance this month", "everyone_sessions": "everyone active this week"}


class GroupError(ValueError):
    """A group challenge request that cannot be honoured."""


def mutual_follows(s: Session, user_id: int) -> list[User]:
    """The athletes ``user_id`` follows who follow them back, by name."""
    back = select(Friend.user_id).where(Friend.friend_id == user_id)
    return list(s.scalars(select(User).join(Friend, and_(Friend.friend_id == User.id, Friend.user_id == user_id))
                          .where(User.id.in_(back)).order_by(User.name, User.id)))


def _period(kind: str, now: datetime, user: User) -> tuple[datetime, datetime]:
    tz = time_zone(user.settings)
    if kind == "everyone_sessions":
        return week_bounds(current_week(now, tz), tz)
    local = now.astimezone(tz).date()
    first = date(local.year, local.month, 1)
    following = date(local.year + (local.month == 12), local.month % 12 + 1, 1)
    return (datetime.combine(first, time(), tzinfo=tz).astimezone(UTC),
            datetime.combine(following, time(), tzinfo=tz).astimezone(UTC))


def create_group(s: Session, creator: User, kind: str, invitees: list[int], sport: str | None = None,
                 target: float | None = None, now: datetime | None = None) -> GroupChallenge:
    """A new group challenge, its creator a member and ``invitees`` invited; GroupError says
    what is wrong (an unknown kind or sport, a target out of range, nobody or too many
    invited, someone invited who does not follow the creator back, too many running)."""
    now = now or datetime.now(UTC)
    if kind not in GROUP_KINDS:
        raise GroupError(f"kind must be one of {', '.join(GROUP_KINDS)}")
    if sport not in (None, "run", "ride"):
        raise GroupError("sport must be run, ride or none (both)")
    if kind == "everyone_sessions":
        if (not isinstance(target, int | float) or not math.isfinite(target) or target != int(target)
                or not 1 <= target <= MAX_SESSIONS):
            raise GroupError(f"the number of activities must be a whole number from 1 to {MAX_SESSIONS}")
    else:
        target = None
    invited = sorted(set(invitees) - {creator.id})
    if not invited:
        raise GroupError("invite at least one athlete")
    if len(invited) > MAX_INVITED:
        raise GroupError(f"at most {MAX_INVITED} athletes can be invited")
    allowed = {u.id for u in mutual_follows(s, creator.id)}
    if not set(invited) <= allowed:
        raise GroupError("only athletes who follow you and whom you follow can be invited")
    s.scalars(select(User.id).where(User.id == creator.id).with_for_update()).first()  # one creation at a time
    running = s.scalar(select(func.count()).select_from(GroupChallenge)
                       .where(GroupChallenge.creator_id == creator.id, GroupChallenge.ends_at > now))
    if running >= MAX_OPEN_CREATED:
        raise GroupError(f"you already run {MAX_OPEN_CREATED} group challenges: wait for one to end")
    start, end = _period(kind, now, creator)
    group = GroupChallenge(creator_id=creator.id, kind=kind, sport=sport, target=target, starts_at=start, ends_at=end)
    s.add(group)
    s.flush()
    s.add(GroupMember(group_id=group.id, user_id=creator.id, status="joined", answered_at=now))
    s.add_all([GroupMember(group_id=group.id, user_id=u, status="invited") for u in invited])
    s.flush()
    return group


def respond(s: Session, user_id: int, group_id: int, join: bool, now: datetime | None = None) -> GroupMember:
    """Join or decline an invitation; a group challenge that has ended can only be declined."""
    now = now or datetime.now(UTC)
    m = s.get(GroupMember, (group_id, user_id), with_for_update=True)
    if m is None:
        raise GroupError("no such invitation")
    if m.status != "invited":
        raise GroupError(f"you have already {m.status} this group challenge")
    group = s.get(GroupChallenge, group_id)
    if join and group.ends_at <= now:
        raise GroupError("this group challenge has ended")
    if join and user_id not in {u.id for u in mutual_follows(s, group.creator_id)}:
        raise GroupError("you and the athlete who invited you no longer follow each other")
    m.status, m.answered_at = ("joined" if join else "declined"), now
    s.flush()
    return m


@dataclass
class Standing:
    user_id: int
    name: str
    username: str
    status: str  # joined or invited
    value: float  # metres, or activities
    done: bool  # reached the target (everyone_sessions)


@dataclass
class Board:
    group: GroupChallenge
    creator: str  # empty, with the username, once the creator has left (or cannot be shown)
    creator_username: str
    rows: list[Standing]
    complete: bool  # everyone who joined reached the target


def board(s: Session, group_id: int, viewer_id: int, now: datetime | None = None) -> Board:
    """The group's board, best first; only for its members (joined or invited). Each member's
    figure counts only what the viewer may see of them (their own activities, public ones,
    and followers-only ones of athletes the viewer follows; members who blocked the viewer
    are not listed), other members' activities for the distance the viewer is shown of them
    (``Activity.shown_distance_m``: a total that counted hidden parts would tell how long
    they are), and only what counts for the
    badges too: scored, not held, dated no later than tomorrow, with a real distance."""
    now = now or datetime.now(UTC)
    group = s.get(GroupChallenge, group_id)
    members = {m.user_id: m for m in s.scalars(select(GroupMember).where(GroupMember.group_id == group_id))}
    if group is None or viewer_id not in members or members[viewer_id].status == "declined":
        raise GroupError("no such group challenge")
    apart = set(s.scalars(blockers_of(viewer_id)))
    shown = [u for u, m in members.items() if m.status != "declined" and u not in apart]
    q = (select(Activity.user_id, Activity.distance_m, Activity.shown_distance_m)
         .join(ActivityFlag, ActivityFlag.activity_id == Activity.id)
         .where(Activity.user_id.in_(shown), Activity.status == "completed", Activity.held.is_(False),
                visible_filter(viewer_id), Activity.start_time >= group.starts_at,
                Activity.start_time < min(group.ends_at, now + timedelta(days=1))))
    if group.sport:
        q = q.where(Activity.sport == group.sport)
    totals: dict[int, float] = {}
    for user_id, own, seen in s.execute(q):
        metres = counted_figure(own if user_id == viewer_id else seen)
        if group.kind == "everyone_sessions":
            totals[user_id] = totals.get(user_id, 0.0) + 1.0
        elif metres > 0:
            totals[user_id] = totals.get(user_id, 0.0) + metres
    users = {u.id: u for u in s.scalars(select(User).where(User.id.in_(shown)))}
    rows = [Standing(u, users[u].name, users[u].username, members[u].status, totals.get(u, 0.0),
                     group.target is not None and totals.get(u, 0.0) >= group.target) for u in shown]
    rows.sort(key=lambda r: (r.status != "joined", -r.value, r.name, r.user_id))
    joined = [r for r in rows if r.status == "joined"]
    # "Everyone made it" needs someone who joined, and says nothing when a member who joined
    # is hidden from the viewer (they blocked them): it would tell how that member did.
    hidden = any(m.status == "joined" and u in apart for u, m in members.items())
    creator = users.get(group.creator_id)
    return Board(group, creator.name if creator else "", creator.username if creator else "", rows,
                 group.target is not None and bool(joined) and not hidden and all(r.done for r in joined))


def leave(s: Session, user_id: int, group_id: int) -> GroupMember:
    """Leave a group challenge (the creator too): the board no longer lists the athlete."""
    m = s.get(GroupMember, (group_id, user_id), with_for_update=True)
    if m is None or m.status == "declined":
        raise GroupError("no such group challenge")
    m.status, m.answered_at = "declined", datetime.now(UTC)
    s.flush()
    return m


def groups_of(s: Session, user_id: int, now: datetime | None = None, days_after: int = 7) -> list[tuple[GroupChallenge, str]]:
    """The group challenges the athlete was invited to or joined, running or ended in the
    last ``days_after`` days, newest first, with their status in each."""
    now = now or datetime.now(UTC)
    rows = s.execute(select(GroupChallenge, GroupMember.status).join(GroupMember, GroupMember.group_id == GroupChallenge.id)
                     .where(GroupMember.user_id == user_id, GroupMember.status != "declined",
                            GroupChallenge.ends_at > now - timedelta(days=days_after))
                     .order_by(GroupChallenge.starts_at.desc(), GroupChallenge.id.desc())).all()
    return [(g, status) for g, status in rows]


def describe_group(group: GroupChallenge) -> str:
    what = {"run": " (running)", "ride": " (riding)"}.get(group.sport or "", "")
    if group.kind == "everyone_sessions":
        n = int(group.target or 0)
        return f"everyone: {n} activit{'y' if n == 1 else 'ies'} this week{what}"
    return f"most distance this month{what}"
