"""What the pages, the command line and the ingest server read of badges and challenge
completions: an activity's badges, the withdrawals moderators see, an athlete's standing
against the catalogue, and what a just-completed activity earns (for its cue). The job that
awards them is ``core.challenges.awards``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts.tables import User
from core.challenges.awards import activity_rows, counting_entries
from core.challenges.badges import Badge, Entry, badge, catalogue, evaluate, time_zone, weeks_active
from core.challenges.personal import measure
from core.challenges.tables import BadgeAward, Challenge


def awards_for(s: Session, activity_ids: list[int]) -> dict[int, list[Badge]]:
    """The badges each of ``activity_ids`` earned and still holds."""
    out: dict[int, list[Badge]] = {i: [] for i in activity_ids}
    if not activity_ids:
        return out
    for a in s.scalars(select(BadgeAward).where(BadgeAward.activity_id.in_(activity_ids),
                                                BadgeAward.withdrawn_at.is_(None)).order_by(BadgeAward.id)):
        b = badge(a.code)
        if b is not None:
            out[a.activity_id].append(b)
    return out


def withdrawals_for(s: Session, activity_id: int) -> list[tuple[BadgeAward, Badge]]:
    """The badges withdrawn because of ``activity_id`` (for the moderators' page)."""
    rows = s.scalars(select(BadgeAward).where(BadgeAward.withdrawn_activity_id == activity_id,
                                              BadgeAward.withdrawn_at.is_not(None)).order_by(BadgeAward.id))
    return [(a, badge(a.code)) for a in rows if badge(a.code) is not None]


def recent_withdrawals(s: Session, limit: int = 20) -> list[tuple[BadgeAward, Badge, User]]:
    """The badges withdrawn lately, newest first, with their athletes (for the moderators)."""
    rows = s.execute(select(BadgeAward, User).join(User, User.id == BadgeAward.user_id)
                     .where(BadgeAward.withdrawn_at.is_not(None))
                     .order_by(BadgeAward.withdrawn_at.desc(), BadgeAward.id.desc()).limit(limit)).all()
    return [(a, badge(a.code), u) for a, u in rows if badge(a.code) is not None]


def _completions(s: Session, user_id: int, entries: list[Entry]) -> list[Entry]:
    """The counting activities that completed the athlete's challenges, as stored."""
    by_id = {e.id: e for e in entries}
    done = s.scalars(select(Challenge.completed_by).where(Challenge.user_id == user_id,
                                                          Challenge.status == "completed"))
    return [by_id[a] for a in done if a in by_id]


@dataclass
class Standing:
    """An athlete's badges: earned (newest first), withdrawn, and the rest with the
    athlete's figure against each mark; activities per week for the streak calendar."""

    earned: list[tuple[BadgeAward, Badge]]
    withdrawn: list[tuple[BadgeAward, Badge]]
    next: list[tuple[Badge, float]]
    weeks: dict
    streak: int
    time_zone: str


def standing(s: Session, user: User, now: datetime | None = None) -> Standing:
    tz = time_zone(user.settings)
    entries = counting_entries(activity_rows(s, user.id))
    outcome = evaluate(entries, tz, now=now, completions=_completions(s, user.id, entries))
    awards = list(s.scalars(select(BadgeAward).where(BadgeAward.user_id == user.id)
                            .order_by(BadgeAward.earned_at.desc(), BadgeAward.id.desc())))
    earned = [(a, badge(a.code)) for a in awards if a.withdrawn_at is None and badge(a.code)]
    withdrawn = [(a, badge(a.code)) for a in awards if a.withdrawn_at is not None and badge(a.code)]
    have = {a.code for a, _ in earned}
    rest = [(b, outcome.progress.get(b.code, 0.0)) for b in catalogue() if b.code not in have]
    rest.sort(key=lambda bf: -min(bf[1] / bf[0].at_least, 1.0))
    streak_badge = next((b for b in catalogue() if b.kind == "weekly_streak"), None)
    streak = int(outcome.progress.get(streak_badge.code, 0)) if streak_badge else 0
    return Standing(earned, withdrawn, rest, weeks_active(entries, tz), streak, str(tz))


def new_badges(s: Session, user_id: int, activity_id: int, rows=None) -> list[Badge]:
    """The badges ``activity_id`` earns now, if it stands (for the cue when it completes):
    evaluated on the athlete's activities that are not held, scored or not yet. The award
    itself waits for the anomaly check: a held activity earns nothing."""
    user = s.get(User, user_id)
    if user is None:
        return []
    rows = activity_rows(s, user_id) if rows is None else rows
    if not any(r.id == activity_id for r in rows):
        return []
    entries = counting_entries(rows, include_unscored=True)
    # The challenges this activity completes count already: the badges for completing
    # challenges are earned by it too, though the job records the completion only later.
    completions = _completions(s, user_id, entries)
    mine = next((e for e in entries if e.id == activity_id), None)
    if mine is not None:
        completions += [mine] * len(new_completions(s, user_id, activity_id, rows))
    outcome = evaluate(entries, time_zone(user.settings), completions=completions)
    have = set(s.scalars(select(BadgeAward.code).where(BadgeAward.user_id == user_id,
                                                       BadgeAward.withdrawn_at.is_(None))))
    return [badge(code) for code, e in outcome.earned.items() if e.id == activity_id and code not in have]


def new_completions(s: Session, user_id: int, activity_id: int, rows=None) -> list[Challenge]:
    """The athlete's challenges not completed yet (active, or missed: a late sync into a week
    that is over) that ``activity_id`` completes now, if it stands (for the cue when it
    completes): measured on their activities that are not held, scored or not yet. The badge
    job records the completion once the activity is scored."""
    rows = activity_rows(s, user_id) if rows is None else rows
    entries = counting_entries(rows, include_unscored=True)
    mine = next((e for e in entries if e.id == activity_id), None)
    if mine is None:
        return []
    out = []
    for c in s.scalars(select(Challenge).where(Challenge.user_id == user_id,
                                               Challenge.status.in_(("active", "missed")),
                                               Challenge.starts_at <= mine.start, Challenge.deadline > mine.start)):
        _, reached = measure(c.kind, c.sport, c.target, entries, c.starts_at, c.deadline)
        others = [e for e in entries if e.id != activity_id]
        _, without = measure(c.kind, c.sport, c.target, others, c.starts_at, c.deadline)
        if reached is not None and without is None:  # this activity makes the difference (a late sync too)
            out.append(c)
    return out


def completed_by(s: Session, activity_ids: list[int]) -> dict[int, list[Challenge]]:
    """The challenges each of ``activity_ids`` completed."""
    out: dict[int, list[Challenge]] = {i: [] for i in activity_ids}
    if activity_ids:
        for c in s.scalars(select(Challenge).where(Challenge.completed_by.in_(activity_ids),
                                                   Challenge.status == "completed").order_by(Challenge.id)):
            out[c.completed_by].append(c)
    return out
