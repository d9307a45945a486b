"""Personal weekly challenges: built from the athlete's own recent weeks, for one week of
their calendar (Monday to Sunday in their time zone), with progress from the activities
that count (completed, not held) done that week, late offline syncs included.

Each week an athlete active in the last eight weeks gets one to three challenges:
- sessions: one more than their usual week (the usual week rounded: three sessions a week
  become four), or, when they have had no activity in either of the last two weeks, one
  fewer (at least one): a gentler, timelier nudge back;
- distance, in the sport they cover most, when they usually cover 2 km a week or more: their
  usual weekly distance plus 10% (rounded up to 0.5 km), or half of it when lapsing;
- climbing, when they usually climb 150 m a week or more: plus 10% (rounded up to 50 m), or
  half when lapsing.
The usual week is the mean of the weeks since their first activity within the last eight
(a new athlete is not diluted by weeks before they joined); an athlete whose first activity
is in this very week gets a welcome challenge of two activities. An athlete can decline a
challenge ("too hard", "too easy", "not now"); it is kept, with the reason, as a signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core import units
from core.challenges.badges import Entry, week_start

HISTORY_WEEKS = 8
LAPSED_WEEKS = 2  # no activity in as many past weeks: the gentler challenge
MIN_DISTANCE_M = 2000.0
MIN_CLIMB_M = 150.0
STEP = 0.10  # a level is 10% of the usual week's distance or climbing (a session for sessions)
GENTLE = 0.5  # the share of the usual distance or climbing asked of a lapsing athlete
# A new athlete (first activity this week) has no usual week yet: two activities this week.
WELCOME = {"kind": "sessions", "sport": None, "usual": 0.0, "level": 0, "target": 2.0}


def iso_week(day: date) -> str:
    y, w, _ = day.isocalendar()
    return f"{y}-W{w:02d}"


def week_monday(week: str) -> date:
    """The Monday of an ISO week "YYYY-Www"; ValueError for anything else."""
    try:
        year, w = week.split("-W")
        return date.fromisocalendar(int(year), int(w), 1)
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"not an ISO week (YYYY-Www): {week!r}") from exc


def week_bounds(week: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """When the athlete's week begins and ends (Monday 00:00 to the next Monday 00:00 in
    their time zone), in UTC: a daylight-saving change makes it 167 or 169 hours."""
    monday = week_monday(week)
    return (datetime.combine(monday, time(), tzinfo=tz).astimezone(UTC),
            datetime.combine(monday + timedelta(days=7), time(), tzinfo=tz).astimezone(UTC))


def current_week(now: datetime, tz: ZoneInfo) -> str:
    return iso_week(now.astimezone(tz).date())


@dataclass
class Usual:
    sessions: float
    distance_m: float
    climb_m: float
    sport: str | None  # the sport with the most distance
    weeks: int
    lapsed: bool  # no activity in either of the last LAPSED_WEEKS weeks


def usual_week(entries: list[Entry], tz: ZoneInfo, monday: date) -> Usual | None:
    """The athlete's usual week over the HISTORY_WEEKS weeks before ``monday`` (from their
    first activity in that window); None when they had none."""
    first = monday - timedelta(weeks=HISTORY_WEEKS)
    window = [e for e in entries if first <= e.start.astimezone(tz).date() < monday]
    if not window:
        return None
    began = min(week_start(e.start.astimezone(tz).date()) for e in window)
    weeks = max(1, (monday - began).days // 7)
    by_sport: dict[str, float] = {}
    for e in window:
        by_sport[e.sport] = by_sport.get(e.sport, 0.0) + e.distance_m
    sport = max(by_sport, key=by_sport.get)
    recent = monday - timedelta(weeks=LAPSED_WEEKS)
    lapsed = not any(e.start.astimezone(tz).date() >= recent for e in window)
    return Usual(sessions=len(window) / weeks,
                 distance_m=sum(e.distance_m for e in window if e.sport == sport) / weeks,
                 climb_m=sum(e.climb_m for e in window) / weeks, sport=sport, weeks=weeks, lapsed=lapsed)


def _round_up(value: float, step: float) -> float:
    return max(step, math.ceil(value / step) * step)


def build(u: Usual, level: int | None = None) -> list[dict]:
    """The week's challenges for usual week ``u``: each a dict of kind, sport, target, usual,
    level. ``level`` (steps above the usual week) overrides the default: +1, or -1 when lapsing."""
    level = (-1 if u.lapsed else 1) if level is None else level
    out = [{"kind": "sessions", "sport": None, "usual": round(u.sessions, 2), "level": level,
            "target": float(max(1, round(u.sessions) + level))}]
    factor = GENTLE if level < 0 and u.lapsed else 1.0 + STEP * level
    if u.distance_m >= MIN_DISTANCE_M:
        out.append({"kind": "distance", "sport": u.sport, "usual": round(u.distance_m, 1), "level": level,
                    "target": _round_up(u.distance_m * factor, 500.0)})
    if u.climb_m >= MIN_CLIMB_M:
        out.append({"kind": "climb", "sport": None, "usual": round(u.climb_m, 1), "level": level,
                    "target": _round_up(u.climb_m * factor, 50.0)})
    return out


def measure(kind: str, sport: str | None, target: float, entries: list[Entry], start: datetime,
            end: datetime) -> tuple[float, Entry | None]:
    """Progress towards a challenge from the counting ``entries`` started within [start, end),
    and the activity with which the target was reached (None if it was not)."""
    total, reached = 0.0, None
    for e in sorted(entries, key=lambda e: (e.start, e.id)):
        if not start <= e.start < end or (sport is not None and e.sport != sport):
            continue
        total += 1.0 if kind == "sessions" else (e.distance_m if kind == "distance" else e.climb_m)
        if reached is None and total >= target:
            reached = e
    return total, reached


def describe(kind: str, sport: str | None, target: float, system: str = "metric") -> str:
    """The challenge in words: "4 activities this week", "25.0 km of running this week"."""
    if kind == "sessions":
        n = int(target)
        return f"{n} activit{'y' if n == 1 else 'ies'} this week"
    if kind == "distance":
        what = {"run": " of running", "ride": " of riding"}.get(sport or "", "")
        return f"{units.distance(target, system, digits=1)}{what} this week"
    return f"{units.elevation(target, system)} of climbing this week"


def amount(kind: str, value: float, system: str = "metric") -> str:
    if kind == "sessions":
        return f"{value:.0f}"
    if kind == "distance":
        return units.distance(value, system, digits=1)
    return units.elevation(value, system)
