"""The badge catalogue (``badges.json``: data, read and checked once) and its rules: pure
functions from an athlete's counting activities to the badges they earned, which activity
earned each, and how far they are from the rest.

Every rule reads activities in the order they were done (start time, then id), so the
activity that earns a badge is the one with which the athlete first reached it, whatever
order they were uploaded or synced in. Calendar rules (months, weeks, hours of the day) go
by the athlete's time zone (``time_zone`` in their settings, UTC when unset): a week runs
from Monday to Sunday there, and a daylight-saving change shifts nothing.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core import units

CATALOGUE_FILE = Path(__file__).resolve().parent / "badges.json"
KINDS = ("single", "total", "month_total", "count", "weekly_streak", "start_hour", "routes", "challenges")
METRICS = ("distance_m", "climb_m", "moving_s")
SPORTS = ("run", "ride")


# What others see of an athlete's badges on an activity: only those the activity earned on
# its own. A total, a month, a streak, a count or a challenge also tells of the athlete's
# other activities, some of which the viewer may not be allowed to see (private ones).
SHOWN_TO_OTHERS = frozenset({"single"})
# The figure others are shown of an activity (``core.social.shown``) for each metric.
SHOWN_FIGURE = {"distance_m": "distance_m", "climb_m": "elevation_gain_m", "moving_s": "moving_time_s"}


def shown(badges, own: bool, figures: dict | None = None) -> list:
    """The badges a viewer sees on an activity: all of them on their own, else only those
    the activity earned on its own, and where part of it is hidden from the viewer
    (``figures``: what they are shown of it), only those the part shown reaches: a half
    marathon badge beside 20.9 km would tell how much a privacy zone hides."""
    if own:
        return list(badges)
    out = []
    for b in badges:
        if b.kind not in SHOWN_TO_OTHERS:
            continue
        if figures is not None:
            value = figures.get(SHOWN_FIGURE.get(b.metric or "", ""))
            if value is None or not value >= b.at_least:
                continue
        out.append(b)
    return out


class CatalogueError(ValueError):
    """A badge catalogue that does not describe badges this module can award."""


@dataclass(frozen=True)
class Badge:
    code: str
    name: str
    icon: str  # a Material Symbols name
    description: str
    kind: str
    at_least: float  # the mark: metres, seconds, activities, weeks or routes
    metric: str | None = None
    sport: str | None = None
    from_hour: int = 0
    to_hour: int = 24


@dataclass(frozen=True)
class Entry:
    """One counting activity as the rules see it."""

    id: int
    sport: str
    start: datetime  # aware
    distance_m: float = 0.0
    climb_m: float = 0.0
    moving_s: float = 0.0
    route_id: int | None = None


@dataclass
class Outcome:
    """What the rules make of an athlete's activities: the activity that earned each badge,
    and for every badge the athlete's figure against its mark (for "what is left")."""

    earned: dict[str, Entry] = field(default_factory=dict)
    progress: dict[str, float] = field(default_factory=dict)


def _badge(raw: dict) -> Badge:
    try:
        rule = dict(raw["rule"])
        kind = rule.pop("kind")
        if kind not in KINDS:
            raise CatalogueError(f"badge {raw.get('code')!r}: unknown kind {kind!r}")
        if kind == "weekly_streak":
            rule["at_least"] = rule.pop("weeks")
        badge = Badge(code=str(raw["code"]), name=str(raw["name"]), icon=str(raw["icon"]),
                      description=str(raw["description"]), kind=kind, **rule)
    except (KeyError, TypeError) as exc:
        raise CatalogueError(f"badge {raw.get('code')!r}: {exc}") from exc
    if not re.fullmatch(r"[a-z0-9_]{1,60}", badge.icon):
        raise CatalogueError(f"badge {badge.code!r}: the icon must be a Material Symbols name")
    if not re.fullmatch(r"[a-z0-9_]{1,40}", badge.code):
        raise CatalogueError(f"badge {badge.code!r}: the code must be lower-case letters, digits and _")
    if badge.at_least <= 0:
        raise CatalogueError(f"badge {badge.code!r}: the mark must be positive")
    if kind in ("single", "total", "month_total") and badge.metric not in METRICS:
        raise CatalogueError(f"badge {badge.code!r}: metric must be one of {', '.join(METRICS)}")
    if badge.sport is not None and badge.sport not in SPORTS:
        raise CatalogueError(f"badge {badge.code!r}: sport must be run or ride")
    if not 0 <= badge.from_hour < badge.to_hour <= 24:
        raise CatalogueError(f"badge {badge.code!r}: hours must satisfy 0 <= from_hour < to_hour <= 24")
    return badge


def parse_catalogue(data: dict) -> tuple[Badge, ...]:
    """The badges a catalogue document describes; CatalogueError when one is malformed."""
    badges = tuple(_badge(raw) for raw in data["badges"])
    codes = [b.code for b in badges]
    if len(set(codes)) != len(codes):
        raise CatalogueError("badge codes must be unique")
    return badges


@lru_cache(maxsize=1)
def catalogue() -> tuple[Badge, ...]:
    """The badges of ``badges.json``, in its order."""
    return parse_catalogue(json.loads(CATALOGUE_FILE.read_text(encoding="utf-8")))


def badge(code: str) -> Badge | None:
    return next((b for b in catalogue() if b.code == code), None)


def time_zone(settings: dict | None) -> ZoneInfo:
    """The athlete's time zone from their settings (UTC when unset, unknown or not a name)."""
    name = settings.get("time_zone") if isinstance(settings, dict) else None
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ZoneInfo("UTC")


def week_start(day: date) -> date:
    """The Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())


def _month_key(e: Entry, tz: ZoneInfo) -> tuple[int, int]:
    local = e.start.astimezone(tz)
    return local.year, local.month


def _applies(b: Badge, e: Entry) -> bool:
    return b.sport is None or e.sport == b.sport


def evaluate(entries: list[Entry], tz: ZoneInfo, now: datetime | None = None,
             badges: tuple[Badge, ...] | None = None, completions: list[Entry] = ()) -> Outcome:
    """Which of ``badges`` (the catalogue by default) the counting activities ``entries``
    earn, and the athlete's figure for each: the best single activity, the all-time total,
    this month's total, the count, the current weekly streak (this week or last week
    ending it), the routes followed, or the challenges completed (``completions``: the
    activity that completed each). ``now`` (aware; default: now) places "this month" and
    "this week"."""
    badges = catalogue() if badges is None else badges
    now = now or datetime.now(tz)
    done = sorted(entries, key=lambda e: (e.start, e.id))
    out = Outcome()
    streaks = _streaks(done, tz)
    for b in badges:
        mine = (sorted(completions, key=lambda e: (e.start, e.id)) if b.kind == "challenges"
                else [e for e in done if _applies(b, e)])
        if b.kind == "weekly_streak":
            completed = streaks["firsts"].get(int(b.at_least))
            if completed:
                out.earned[b.code] = completed[0]
            out.progress[b.code] = streaks["current"](now)
            continue
        figure, earned = 0.0, None
        seen_routes: set[int] = set()
        per_month: dict[tuple[int, int], float] = defaultdict(float)
        for e in mine:
            if b.kind == "single":
                value = getattr(e, b.metric)
                figure = max(figure, value)
            elif b.kind == "total":
                figure += getattr(e, b.metric)
            elif b.kind == "month_total":
                per_month[_month_key(e, tz)] += getattr(e, b.metric)
                figure = per_month[_month_key(e, tz)]
            elif b.kind in ("count", "challenges"):
                figure += 1
            elif b.kind == "start_hour":
                figure += b.from_hour <= e.start.astimezone(tz).hour < b.to_hour
            elif b.kind == "routes":
                if e.route_id is not None:
                    seen_routes.add(e.route_id)
                figure = len(seen_routes)
            if earned is None and figure >= b.at_least:
                earned = e
        if earned is not None:
            out.earned[b.code] = earned
        if b.kind == "month_total":
            local = now.astimezone(tz)
            figure = per_month.get((local.year, local.month), 0.0)
        out.progress[b.code] = figure
    return out


def _streaks(done: list[Entry], tz: ZoneInfo) -> dict:
    """For each streak length, the activity that completed a run of that many consecutive
    weeks with an activity (the first activity of the run's last week), and a function of
    "now" giving the current streak: weeks in a row up to this week, or up to last week
    when this week has none yet (the streak is still alive until this week ends)."""
    first_of_week: dict[date, Entry] = {}
    for e in done:
        first_of_week.setdefault(week_start(e.start.astimezone(tz).date()), e)
    firsts: dict[int, list[Entry]] = defaultdict(list)
    run, previous = 0, None
    for week in sorted(first_of_week):
        run = run + 1 if previous is not None and week - previous == timedelta(weeks=1) else 1
        previous = week
        firsts[run].append(first_of_week[week])
    weeks = set(first_of_week)

    def current(now: datetime) -> int:
        week = week_start(now.astimezone(tz).date())
        if week not in weeks:
            week -= timedelta(weeks=1)
        n = 0
        while week in weeks:
            n += 1
            week -= timedelta(weeks=1)
        return n

    return {"firsts": firsts, "current": current}


def weeks_active(entries: list[Entry], tz: ZoneInfo) -> dict[date, int]:
    """Activities per week (keyed by the week's Monday, in the athlete's time zone)."""
    counts: dict[date, int] = defaultdict(int)
    for e in entries:
        counts[week_start(e.start.astimezone(tz).date())] += 1
    return dict(counts)


def left(b: Badge, figure: float, system: str = "metric") -> str:
    """What is left to reach ``b`` from ``figure``, in words (in the athlete's ``system`` of units)."""
    gap = b.at_least - figure
    if gap <= 0:  # counted from activities the worker has not checked yet: awarded once it has
        return "reached: awarded once your latest activities are checked"
    if b.kind == "weekly_streak":
        return f"{gap:.0f} more week{'s' if gap != 1 else ''} in a row"
    if b.kind in ("count", "start_hour"):
        return f"{gap:.0f} more activit{'ies' if gap != 1 else 'y'}"
    if b.kind == "routes":
        return f"{gap:.0f} more route{'s' if gap != 1 else ''}"
    if b.kind == "challenges":
        return f"{gap:.0f} more challenge{'s' if gap != 1 else ''} completed"
    # Rounded up, so that what is left never reads as nothing before the mark is reached.
    if b.metric == "distance_m":
        unit_m = units.unit_length_m(system)
        text = units.distance(math.ceil(gap / unit_m * 10) / 10 * unit_m, system, digits=1)
    elif b.metric == "climb_m":
        feet = units.elevation_value(1.0, system)
        text = f"{units.elevation(math.ceil(gap * feet) / feet, system)} of climbing"
    else:
        text = f"{math.ceil(gap / 60):,} min"
    if b.kind == "single":
        return f"{text} more than your best"
    if b.kind == "month_total":
        return f"{text} more this month"
    return f"{text} more"
