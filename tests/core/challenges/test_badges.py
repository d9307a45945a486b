"""The badge rules at their boundaries, in the athlete's time zone (daylight-saving changes
included), whatever order activities arrive in; and the catalogue's checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.challenges.badges import (
    KINDS,
    CatalogueError,
    Entry,
    badge,
    catalogue,
    evaluate,
    left,
    parse_catalogue,
    shown,
    time_zone,
    weeks_active,
)

UTC_TZ = ZoneInfo("UTC")
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def run(i, when, km=5.0, sport="run", climb=0.0, moving=1800.0, route=None):
    return Entry(id=i, sport=sport, start=when, distance_m=km * 1000, climb_m=climb, moving_s=moving, route_id=route)


def day(y, m, d, h=12, mi=0, tz=UTC):
    return datetime(y, m, d, h, mi, tzinfo=tz)


def earned(entries, tz=UTC_TZ, now=NOW):
    return evaluate(entries, tz, now=now).earned


def test_the_catalogue_is_data_every_badge_has_a_rule_an_icon_and_words():
    badges = catalogue()
    assert len(badges) >= 20
    assert len({b.code for b in badges}) == len(badges)
    assert {b.kind for b in badges} == set(KINDS)  # every kind of rule has a badge
    assert all(b.name and b.icon and b.description for b in badges)


@pytest.mark.parametrize("raw, why", [
    ({"code": "x", "name": "X", "icon": "flag", "description": "d", "rule": {"kind": "fastest", "at_least": 1}},
     "unknown kind"),
    ({"code": "x", "name": "X", "icon": "flag", "description": "d",
      "rule": {"kind": "single", "metric": "speed", "at_least": 1}}, "metric"),
    ({"code": "x", "name": "X", "icon": "flag", "description": "d", "rule": {"kind": "count", "at_least": 0}},
     "positive"),
    ({"code": "x", "name": "X", "icon": "flag", "description": "d",
      "rule": {"kind": "start_hour", "from_hour": 7, "to_hour": 4, "at_least": 1}}, "hours"),
    ({"code": "x", "name": "X", "icon": "flag", "description": "d", "rule": {"kind": "count", "at_least": 1,
                                                                              "sport": "swim"}}, "sport"),
    ({"code": "x", "name": "X", "description": "d", "rule": {"kind": "count", "at_least": 1}}, "icon"),
])
def test_a_malformed_badge_is_refused_with_its_reason(raw, why):
    with pytest.raises(CatalogueError, match=why):
        parse_catalogue({"badges": [raw]})


def test_a_duplicate_code_is_refused():
    raw = {"code": "x", "name": "X", "icon": "flag", "description": "d", "rule": {"kind": "count", "at_least": 1}}
    with pytest.raises(CatalogueError, match="unique"):
        parse_catalogue({"badges": [raw, raw]})


@pytest.mark.parametrize("km, got", [(4.99, False), (4.999, False), (5.0, True), (5.2, True)])
def test_5k_is_5000_metres_or_more(km, got):
    assert ("run_5k" in earned([run(1, day(2026, 5, 1), km=km)])) is got


def test_a_ride_never_earns_a_run_badge_nor_a_run_a_ride_badge():
    got = earned([run(1, day(2026, 5, 1), km=120, sport="ride"), run(2, day(2026, 5, 2), km=99.99, sport="run")])
    assert got["ride_100k"].id == 1 and got["run_marathon"].id == 2 and got["run_5k"].id == 2
    assert "ride_100k" not in earned([run(2, day(2026, 5, 2), km=150, sport="run")])


def test_the_half_marathon_mark_is_exact():
    assert "run_half" not in earned([run(1, day(2026, 5, 1), km=21.097)])
    assert "run_half" in earned([run(1, day(2026, 5, 1), km=21.0975)])


def test_the_earning_activity_is_the_first_done_not_the_first_uploaded():
    """A late offline sync of an older run takes the badge: entries arrive in any order."""
    later, older = run(7, day(2026, 5, 9), km=10.5), run(9, day(2026, 5, 2), km=10.1)
    assert earned([later, older])["run_10k"].id == 9
    assert earned([older, later])["run_10k"].id == 9


def test_everest_is_8848_metres_in_all():
    two = [run(1, day(2026, 1, 1), climb=4424), run(2, day(2026, 1, 2), climb=4423.9)]
    assert "climb_everest" not in earned(two)
    three = two + [run(3, day(2026, 1, 3), climb=0.1)]
    assert earned(three)["climb_everest"].id == 3


def test_a_month_total_counts_the_athletes_calendar_month():
    """49.9 km in November (London) and 0.2 km just after midnight on 1 December in London
    (still 30 November in UTC-5): the month is the athlete's."""
    entries = [run(1, day(2026, 11, 10), km=49.9), run(2, day(2026, 12, 1, 0, 30, tz=LONDON), km=0.2)]
    assert "month_50k" not in earned(entries, tz=LONDON)
    assert "month_50k" in earned(entries, tz=ZoneInfo("America/New_York"))


def test_weekly_streaks_follow_local_weeks_across_a_daylight_saving_change():
    """Summer time in London ends on Sunday 25 October 2026. Sundays from 18 October to
    8 November are four local weeks in a row across the change."""
    sundays = [day(2026, 10, 18), day(2026, 10, 25), day(2026, 11, 1), day(2026, 11, 8)]
    entries = [run(i, when.replace(tzinfo=LONDON)) for i, when in enumerate(sundays, 1)]
    assert earned(entries, tz=LONDON)["streak_4w"].id == 4
    assert "streak_4w" not in earned(entries[:3], tz=LONDON)


def test_late_sunday_evenings_stay_in_their_week_across_the_change():
    """Sunday evenings at 23:30 in London, from 18 October (summer time: 22:30 UTC) to
    8 November (winter time: 23:30 UTC): four local weeks in a row; a clock that kept the
    summer offset after the change would put the winter ones on Mondays."""
    evenings = [day(2026, 10, d, 23, 30, tz=LONDON) for d in (18, 25)] + [day(2026, 11, d, 23, 30, tz=LONDON)
                                                                          for d in (1, 8)]
    entries = [run(i, when.astimezone(UTC)) for i, when in enumerate(evenings, 1)]
    assert earned(entries, tz=LONDON)["streak_4w"].id == 4
    assert [week.isoformat() for week in weeks_active(entries, LONDON)] == [
        "2026-10-12", "2026-10-19", "2026-10-26", "2026-11-02"]


def test_a_week_starts_on_monday_at_midnight_local_time():
    """Monday 19 October 00:30 in London (summer time) is Sunday 23:30 in UTC: a fourth
    local week after three Sundays, but the same UTC week as the third."""
    entries = [run(i, day(2026, 10, d, tz=LONDON)) for i, d in enumerate((4, 11, 18), 1)]
    entries.append(run(4, day(2026, 10, 19, 0, 30, tz=LONDON)))
    assert earned(entries, tz=LONDON)["streak_4w"].id == 4
    assert "streak_4w" not in earned(entries, tz=UTC_TZ)


def test_a_missed_week_breaks_the_streak_and_the_current_streak_survives_until_the_week_ends():
    weeks = [day(2026, 11, 2) + timedelta(weeks=k) for k in (0, 1, 3)]  # 2, 9 and 23 November
    entries = [run(i, w) for i, w in enumerate(weeks, 1)]
    got = evaluate(entries, UTC_TZ, now=day(2026, 11, 30, 9))  # Monday 30 Nov: this week empty so far
    assert got.progress["streak_4w"] == 1  # 23 Nov's week only: 16 Nov's was missed
    assert "streak_4w" not in got.earned
    got = evaluate(entries, UTC_TZ, now=day(2026, 12, 8))  # a whole week with nothing: broken
    assert got.progress["streak_4w"] == 0


@pytest.mark.parametrize("local, counts", [((3, 59), False), ((4, 0), True), ((6, 59), True), ((7, 0), False)])
def test_early_bird_is_4_to_7_in_the_morning_local_time(local, counts):
    when = datetime(2026, 3, 29, *local, tzinfo=LONDON)  # the spring change: 01:00 becomes 02:00 that day
    assert ("early_bird" in earned([run(1, when)], tz=LONDON)) is counts


def test_early_bird_in_summer_time_is_not_early_in_utc_terms():
    """06:30 in London in July is 05:30 UTC: early in either; 07:30 London is 06:30 UTC: early
    only by the wrong clock."""
    assert "early_bird" not in earned([run(1, datetime(2026, 7, 1, 7, 30, tzinfo=LONDON))], tz=LONDON)
    assert "early_bird" in earned([run(1, datetime(2026, 7, 1, 7, 30, tzinfo=LONDON))], tz=UTC_TZ)


def test_ten_early_starts_for_dawn_patrol():
    entries = [run(i, datetime(2026, 6, i, 5, 0, tzinfo=UTC)) for i in range(1, 10)]
    assert "early_bird_10" not in earned(entries)
    assert earned(entries + [run(10, datetime(2026, 6, 20, 6, 59, tzinfo=UTC))])["early_bird_10"].id == 10


def test_explorer_counts_distinct_routes():
    entries = [run(i, day(2026, 4, i), route=1 + i % 4) for i in range(1, 9)] + [run(20, day(2026, 4, 20))]
    assert "explorer_5" not in earned(entries)
    assert earned(entries + [run(21, day(2026, 4, 21), route=99)])["explorer_5"].id == 21


def test_challenge_badges_count_completed_challenges_by_the_activity_that_completed_each():
    done = [run(i, day(2026, 3, 1) + timedelta(weeks=i)) for i in range(10)]
    got = evaluate([], UTC_TZ, now=NOW, completions=done[:9])
    assert got.earned["challenge_1"].id == 0 and "challenge_10" not in got.earned and got.progress["challenge_10"] == 9
    assert evaluate([], UTC_TZ, now=NOW, completions=done[::-1]).earned["challenge_10"].id == 9


def test_counts_and_progress():
    entries = [run(i, day(2026, 1, 1) + timedelta(days=i), km=3) for i in range(49)]
    got = evaluate(entries, UTC_TZ, now=NOW)
    assert "first_activity" in got.earned and "activities_50" not in got.earned
    assert got.progress["activities_50"] == 49
    assert got.progress["run_5k"] == 3000
    b = next(b for b in catalogue() if b.code == "run_5k")
    assert left(b, 3000) == "2.0 km more than your best"
    assert left(b, 3000, "imperial") == "1.3 mi more than your best"  # 1.243 mi, rounded up
    assert left(b, 4999.9) == "0.1 km more than your best"
    climb = next(b for b in catalogue() if b.code == "climb_1000")
    assert left(climb, 999.8) == "1 m of climbing more than your best"
    # Reached by activities not yet checked (awards wait for the worker): never "0 more".
    assert left(b, 12843).startswith("reached") and left(climb, 1000).startswith("reached")


def test_an_unknown_time_zone_is_utc():
    assert str(time_zone({"time_zone": "Mars/Olympus"})) == "UTC"
    assert str(time_zone({"time_zone": "Europe/Paris"})) == "Europe/Paris"
    assert str(time_zone(None)) == "UTC"


def test_weeks_active_are_local_weeks():
    entries = [run(1, day(2026, 11, 1, 23, 30, tz=UTC))]  # Sunday in UTC, Monday in Tokyo
    assert list(weeks_active(entries, UTC_TZ)) == [datetime(2026, 10, 26).date()]
    assert list(weeks_active(entries, ZoneInfo("Asia/Tokyo"))) == [datetime(2026, 11, 2).date()]


def test_others_see_only_the_badges_the_part_of_an_activity_they_are_shown_reaches():
    earned = [badge(code) for code in ("run_10k", "run_half", "climb_1000", "long_2h", "month_50k")]
    # The athlete sees everything; others, only what the activity earned on its own.
    assert [b.code for b in shown(earned, own=True)] == ["run_10k", "run_half", "climb_1000", "long_2h", "month_50k"]
    assert [b.code for b in shown(earned, own=False)] == ["run_10k", "run_half", "climb_1000", "long_2h"]
    # A privacy zone hides the first 400 m of a 21.3 km run: others are shown 20.9 km, and a
    # half marathon badge beside it would tell them how much is hidden.
    hidden = {"distance_m": 20_900.0, "elevation_gain_m": 1_000.0, "moving_time_s": 7_100.0}
    assert [b.code for b in shown(earned, own=False, figures=hidden)] == ["run_10k", "climb_1000"]
    assert shown(earned, own=False, figures={}) == []  # nothing known of what is shown: nothing
