"""A population of athletes with day-level habits: when the demo's athletes train and visit,
and, generated afresh, the populations the engagement (drop-off) model is built and checked on
where the database has too little history. Pure numpy, seeded.

Every athlete has a weekly routine and a life around it; each day is drawn from the routine
times everything that is going on that day. The parameters (``Habits``, all per population):

- ``present_share``: share of athletes already there on day 0; the others join on a day
  drawn uniformly over the period (new joiners over time).
- ``sessions_weights``: chances of a routine of 1, 2, ..., 7 sessions a week; those sessions
  fall on the athlete's preferred weekdays, drawn once.
- ``weekend_long_share``: share of athletes whose routine always holds a Saturday or Sunday
  (the long session).
- ``keep_range``: per athlete, the chance (drawn uniformly in the range) of doing a planned
  session; ``extra_range``: the chance of an unplanned one on another day.
- ``double_share``: share of athletes who sometimes train twice a day (``DOUBLE_CHANCE`` of
  their active days).
- ``week_noise_sd``: standard deviation of a week's log busy-factor (a busy or a keen week
  moves all of its days together), the day-to-day noise on top of the routine.
- ``winter_share`` and ``winter_dip``: share of athletes who train less in winter, and by how
  much at mid-January at most (each such athlete's dip is 50-100% of it);
  ``start_day_of_year``: the calendar day of day 0.
- ``holidays_per_year`` and ``holiday_weeks``: breaks of 1-3 weeks (almost no training,
  fewer visits); ``holiday_return``: share who pick up again after a holiday (the others
  stop there).
- ``injuries_per_year`` and ``injury_weeks``: breaks of 2-8 weeks with no training at all
  while the athlete still visits, a little less.
- ``decline_per_year``: chance of a gradual loss of motivation starting within a year;
  ``newcomer_decline``: extra chance that a new joiner fades within their first 12 weeks;
  ``fade_weeks``: how long the fade lasts before training stops (sessions fall to a quarter
  of the routine by the end).
- ``visit_lead_weeks``: visits start fading this much before training does (the warning
  sign), and fall to a fifth at the stop and to almost nothing after.
- ``comeback_share`` and ``comeback_weeks``: share of those who stopped that come back,
  and after how long (months, typically).
- ``browser_share``: athletes who visit the dashboard a lot whatever they do (following
  others), training at most twice a week.
- ``visits_median`` and ``visits_sd``: the athletes' visits on a day without training
  (log-normal across athletes); ``visits_after_activity``: extra visits expected on the day
  of an activity and half of it the day after.
- ``sign_in_range``: per athlete, the share of visits that start with a sign-in (the rest
  ride a remembered session).
- ``kudos_median`` and ``kudos_sd``: kudos received per activity (log-normal across
  athletes: popularity); ``giving_median`` and ``giving_sd``: kudos given per visit;
  ``comment_rate``: comments per kudos, given and received.

``generate(athletes, weeks, seed, habits)`` returns a ``Population`` of arrays shaped
(athletes, days); it also keeps the truth of who stopped and came back, for the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

DAYS_PER_YEAR = 365.25
DOUBLE_CHANCE = 0.15
FADE_FLOOR = 0.25  # share of the routine left at the end of a fade
VISITS_AT_STOP = 0.2
VISITS_AFTER_STOP = 0.03
HOLIDAY_TRAINING = 0.05
HOLIDAY_VISITS = 0.3
INJURY_VISITS = 0.6
NEWCOMER_WEEKS = 12
MAX_BREAKS = 8


@dataclass(frozen=True)
class Habits:
    """A population's habits (see the module docstring for each)."""

    present_share: float = 0.6
    sessions_weights: tuple[float, ...] = (0.12, 0.22, 0.26, 0.18, 0.12, 0.06, 0.04)
    weekend_long_share: float = 0.45
    keep_range: tuple[float, float] = (0.7, 0.95)
    extra_range: tuple[float, float] = (0.01, 0.08)
    double_share: float = 0.05
    week_noise_sd: float = 0.35
    winter_share: float = 0.4
    winter_dip: float = 0.5
    start_day_of_year: int = 250
    holidays_per_year: float = 1.5
    holiday_weeks: tuple[int, int] = (1, 3)
    holiday_return: float = 0.9
    injuries_per_year: float = 0.25
    injury_weeks: tuple[int, int] = (2, 8)
    decline_per_year: float = 0.35
    newcomer_decline: float = 0.25
    fade_weeks: tuple[int, int] = (2, 10)
    visit_lead_weeks: tuple[int, int] = (1, 4)
    comeback_share: float = 0.3
    comeback_weeks: tuple[int, int] = (8, 40)
    browser_share: float = 0.08
    visits_median: float = 0.6
    visits_sd: float = 0.8
    visits_after_activity: float = 1.5
    sign_in_range: tuple[float, float] = (0.1, 0.6)
    kudos_median: float = 1.5
    kudos_sd: float = 0.9
    giving_median: float = 0.8
    giving_sd: float = 0.9
    comment_rate: float = 0.15


# Another population's habits, for a check the model is never tuned on: fewer sessions, more
# and longer breaks, faster fades with a shorter warning in the visits, fewer comebacks, more
# browsers, a spring start.
OTHER_HABITS = replace(
    Habits(), present_share=0.45, sessions_weights=(0.2, 0.28, 0.24, 0.14, 0.08, 0.04, 0.02),
    weekend_long_share=0.3, keep_range=(0.6, 0.9), week_noise_sd=0.5, winter_share=0.25, winter_dip=0.35,
    start_day_of_year=80, holidays_per_year=2.5, holiday_return=0.85, injuries_per_year=0.4,
    decline_per_year=0.5, newcomer_decline=0.35, fade_weeks=(1, 6), visit_lead_weeks=(0, 2),
    comeback_share=0.2, browser_share=0.15, visits_median=0.4, visits_after_activity=1.0,
    kudos_median=1.0, giving_median=0.5)


@dataclass(frozen=True)
class Population:
    """Day-level counts shaped (athletes, days), day 0 being a ``start_weekday`` (0 Monday),
    and each athlete's join day. ``stopped`` and ``back`` are the truth of drop-offs (the
    day training stopped and the day it came back; -1 for none), for the tests only."""

    activities: np.ndarray
    visits: np.ndarray
    sign_ins: np.ndarray
    kudos_given: np.ndarray
    kudos_received: np.ndarray
    comments_given: np.ndarray
    comments_received: np.ndarray
    joined: np.ndarray
    start_weekday: int
    stopped: np.ndarray
    back: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """(athletes, days)."""
        return self.activities.shape


def generate(athletes: int, weeks: int, seed: int, habits: Habits | None = None) -> Population:
    """A population of ``athletes`` over ``weeks`` weeks, the same for the same seed."""
    h = habits or Habits()
    rng = np.random.default_rng(seed)
    n, days = athletes, weeks * 7
    t = np.arange(days)
    start_weekday = int(rng.integers(7))
    weekday = (start_weekday + t) % 7

    present = rng.random(n) < h.present_share
    joined = np.where(present, 0, rng.integers(1, max(days, 2), n))
    browser = rng.random(n) < h.browser_share
    weights = np.asarray(h.sessions_weights) / np.sum(h.sessions_weights)
    sessions = rng.choice(np.arange(1, 8), size=n, p=weights)
    sessions = np.where(browser, np.minimum(sessions, 2), sessions)
    planned = _routine(rng, sessions, rng.random(n) < h.weekend_long_share)

    keep = rng.uniform(*h.keep_range, n)
    extra = rng.uniform(*h.extra_range, n)
    p = np.where(planned[:, weekday], keep[:, None], extra[:, None])
    p = p * np.repeat(np.exp(rng.normal(0.0, h.week_noise_sd, (n, weeks))), 7, axis=1)
    p = p * _winter(rng, n, t, h)

    breaks_act, breaks_vis, holiday_end = _breaks(rng, n, days, h)
    act_m, vis_m, stopped, back = _fades(rng, joined, days, holiday_end, h)
    p = np.clip(p * breaks_act * act_m, 0.0, 0.98)
    p[t[None, :] < joined[:, None]] = 0.0
    active = rng.random((n, days)) < p
    doubles = (rng.random(n) < h.double_share)[:, None] & (rng.random((n, days)) < DOUBLE_CHANCE)
    activities = active.astype(np.int16) + (active & doubles)

    base_visits = h.visits_median * np.exp(rng.normal(0.0, h.visits_sd, n))
    base_visits = np.where(browser, rng.uniform(3.0, 8.0, n), base_visits)
    after = np.zeros_like(activities)
    after[:, 1:] = activities[:, :-1]
    lam = base_visits[:, None] * vis_m * breaks_vis + h.visits_after_activity * (activities + 0.5 * after)
    lam[t[None, :] < joined[:, None]] = 0.0
    visits = rng.poisson(lam).astype(np.int16)
    sign_ins = rng.binomial(visits, rng.uniform(*h.sign_in_range, n)[:, None]).astype(np.int16)

    popularity = h.kudos_median * np.exp(rng.normal(0.0, h.kudos_sd, n))
    giving = h.giving_median * np.exp(rng.normal(0.0, h.giving_sd, n))
    kudos_received = rng.poisson(activities * popularity[:, None]).astype(np.int16)
    comments_received = rng.poisson(activities * popularity[:, None] * h.comment_rate).astype(np.int16)
    kudos_given = rng.poisson(visits * giving[:, None]).astype(np.int16)
    comments_given = rng.poisson(visits * giving[:, None] * h.comment_rate).astype(np.int16)
    return Population(activities=activities, visits=visits, sign_ins=sign_ins, kudos_given=kudos_given,
                      kudos_received=kudos_received, comments_given=comments_given,
                      comments_received=comments_received, joined=joined, start_weekday=start_weekday,
                      stopped=stopped, back=back)


def _routine(rng: np.random.Generator, sessions: np.ndarray, weekend_long: np.ndarray) -> np.ndarray:
    """Each athlete's preferred weekdays (athletes, 7): ``sessions`` of them, a Saturday or
    Sunday always among them for the weekend-long athletes."""
    n = len(sessions)
    keys = rng.random((n, 7))
    long_day = 5 + rng.integers(2, size=n)
    keys[np.arange(n), long_day] = np.where(weekend_long, -1.0, keys[np.arange(n), long_day])
    order = np.argsort(keys, axis=1)
    planned = np.zeros((n, 7), dtype=bool)
    for k in range(7):
        planned[np.arange(n), order[:, k]] = sessions > k
    return planned


def _winter(rng: np.random.Generator, n: int, t: np.ndarray, h: Habits) -> np.ndarray:
    """The seasonal factor (athletes, days): lower around mid-January for the winter dippers."""
    day_of_year = (h.start_day_of_year + t) % DAYS_PER_YEAR
    winter = np.maximum(np.cos(2 * np.pi * (day_of_year - 15) / DAYS_PER_YEAR), 0.0)
    depth = np.where(rng.random(n) < h.winter_share, rng.uniform(0.5, 1.0, n) * h.winter_dip, 0.0)
    return 1.0 - depth[:, None] * winter[None, :]


def _breaks(rng: np.random.Generator, n: int, days: int, h: Habits):
    """Holidays and injuries: the factors on training and on visits (athletes, days), and the
    end of each athlete's first holiday (-1 for none)."""
    t = np.arange(days)
    act = np.ones((n, days))
    vis = np.ones((n, days))
    first_end = np.full(n, -1)
    for rate, weeks, act_f, vis_f, holiday in ((h.holidays_per_year, h.holiday_weeks, HOLIDAY_TRAINING,
                                                HOLIDAY_VISITS, True),
                                               (h.injuries_per_year, h.injury_weeks, 0.0, INJURY_VISITS, False)):
        count = np.minimum(rng.poisson(rate * days / DAYS_PER_YEAR, n), MAX_BREAKS)
        start = np.sort(rng.integers(0, days, (n, MAX_BREAKS)), axis=1)
        length = 7 * rng.integers(weeks[0], weeks[1] + 1, (n, MAX_BREAKS))
        start = np.where(np.arange(MAX_BREAKS)[None, :] < count[:, None], start, days)
        inside = ((t[None, None, :] >= start[:, :, None])
                  & (t[None, None, :] < (start + length)[:, :, None])).any(axis=1)
        act[inside] *= act_f
        vis[inside] *= vis_f
        if holiday:
            first_end = np.where(count > 0, start[:, 0] + length[:, 0], -1)
    return act, vis, first_end


def _fades(rng: np.random.Generator, joined: np.ndarray, days: int, holiday_end: np.ndarray, h: Habits):
    """Motivation: the factors on training and on visits (athletes, days) of those who fade
    and stop (some for good, some coming back), with the stop and comeback days."""
    n = len(joined)
    t = np.arange(days)[None, :]
    hazard = -np.log(1.0 - h.decline_per_year) / DAYS_PER_YEAR
    stop = joined + rng.exponential(1.0 / hazard, n)
    newcomer = (joined > 0) & (rng.random(n) < h.newcomer_decline)
    stop = np.where(newcomer, np.minimum(stop, joined + rng.uniform(14, 7 * NEWCOMER_WEEKS, n)), stop)
    fade = 7.0 * rng.uniform(*h.fade_weeks, n)
    quits_on_holiday = (holiday_end >= 0) & (rng.random(n) > h.holiday_return) & (holiday_end < stop)
    stop = np.where(quits_on_holiday, holiday_end, stop)
    fade = np.where(quits_on_holiday, 1.0, fade)
    lead = 7.0 * rng.uniform(*h.visit_lead_weeks, n)
    comes_back = rng.random(n) < h.comeback_share
    back = np.where(comes_back, stop + 7.0 * rng.uniform(*h.comeback_weeks, n), np.inf)

    s, b = stop[:, None], back[:, None]
    act = FADE_FLOOR + (1 - FADE_FLOOR) * np.clip((s - t) / fade[:, None], 0.0, 1.0)
    vis = VISITS_AT_STOP + (1 - VISITS_AT_STOP) * np.clip((s - t) / (fade + lead)[:, None], 0.0, 1.0)
    gone = (t >= s) & (t < b)
    act = np.where(gone, 0.0, np.where(t >= b, 1.0, act))
    vis = np.where(gone, VISITS_AFTER_STOP, np.where(t >= b, 1.0, vis))
    stopped = np.where(stop < days, np.floor(stop), -1).astype(int)
    back_day = np.where((stop < days) & (back < days), np.floor(np.where(np.isfinite(back), back, 0)), -1)
    return act, vis, stopped, back_day.astype(int)
