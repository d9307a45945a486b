"""A generated population for evaluating route suggestions offline (never used to serve).

The world has structure the recommender is not told about, and its own parameters (the
recommender's spreads and weights are not these):

- a few metro areas; athletes live around their centre, routes start around it;
- each route has a sport, a distance, climbing per km and a fame nobody states;
- each athlete has a sport, a preferred distance and liking for hills, an exploration rate
  (how often they try a new route instead of repeating one), a weekly habit, and maybe a
  club: club members favour their club's routes and follow each other (social ties that
  correlate with shared routes), friends give kudos, and an athlete is drawn to routes
  their friends have done;
- choices are noisy (a Gumbel draw over utilities), ratings follow utility with noise;
- a share of athletes join late with no history: they answer the settings question
  (sport, usual distance rounded to a kilometre, hills or flat, their area rounded).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from core.recommend.model import Catalogue, Event, Profile

AREAS = ((48.208, 16.373), (51.507, -0.128), (40.417, -3.704))
WEEK_S = 7 * 86400.0
T0 = 1_700_000_000.0
M_PER_DEG = 111_320.0


@dataclass
class Athlete:
    user: int
    sport: str
    home: tuple[float, float]
    distance_m: float
    climb_m_per_km: float
    explore: float
    per_week: float
    club: int | None
    joins_week: int
    friends: set[int] = field(default_factory=set)


@dataclass
class Population:
    catalogue: Catalogue
    events: list[Event]
    athletes: dict[int, Athlete]
    weeks: int

    def stated(self, user: int) -> Profile:
        """What the athlete would answer in settings."""
        a = self.athletes[user]
        return Profile(user, a.sport, round(a.home[0], 2), round(a.home[1], 2),
                       distance_m=round(a.distance_m / 1000.0) * 1000.0 or 1000.0,
                       terrain="hilly" if a.climb_m_per_km >= 12 else "flat", stated=True)


def _offset(rng, centre, spread_m):
    lat = centre[0] + rng.normal(0, spread_m) / M_PER_DEG
    lon = centre[1] + rng.normal(0, spread_m) / (M_PER_DEG * math.cos(math.radians(centre[0])))
    return lat, lon


def _dist(a, b_lat, b_lon):
    return np.hypot((b_lat - a[0]) * M_PER_DEG, (b_lon - a[1]) * M_PER_DEG * math.cos(math.radians(a[0])))


def _routes(rng, routes: int) -> tuple[Catalogue, np.ndarray, np.ndarray]:
    """The catalogue, each route's area and its hidden fame."""
    area = rng.integers(0, len(AREAS), routes)
    is_run = rng.random(routes) < 0.6
    starts = np.array([_offset(rng, AREAS[a], 7000 if r else 11000) for a, r in zip(area, is_run)])
    distance = np.where(is_run, rng.lognormal(math.log(8500), 0.5, routes), rng.lognormal(math.log(42000), 0.45, routes))
    hilly = rng.random(routes) < 0.35
    climb = np.where(hilly, rng.gamma(4.0, 5.0, routes), rng.gamma(2.0, 2.0, routes))
    fame = rng.normal(0, 1, routes)
    names = [f"{'Run' if r else 'Ride'} route {i}" for i, r in enumerate(is_run)]
    cat = Catalogue(np.arange(1, routes + 1), starts[:, 0], starts[:, 1], distance, climb,
                    is_run.astype(float), names)
    return cat, area, fame


def _clubs(rng, cat: Catalogue, area: np.ndarray) -> list[tuple[int, bool, set]]:
    """Twelve clubs per area: a centre and five favourite routes of the club's sport near it."""
    clubs = []
    is_run = cat.run_share >= 0.5
    for c in range(12 * len(AREAS)):
        a, run = c % len(AREAS), bool(rng.random() < 0.6)
        centre = _offset(rng, AREAS[a], 5000)
        pool = np.flatnonzero((area == a) & (is_run == run))
        near = pool[np.argsort(_dist(centre, cat.lat[pool], cat.lon[pool]))[:25]]
        clubs.append((a, run, set(rng.choice(near, size=min(5, near.size), replace=False).tolist())))
    return clubs


def _athletes(rng, athletes: int, clubs, late_share: float, late_week: int) -> dict[int, Athlete]:
    """The athletes and their ties: club members follow each other, plus a few ties outside."""
    people: dict[int, Athlete] = {}
    for u in range(1, athletes + 1):
        run = bool(rng.random() < 0.6)
        a = int(rng.integers(0, len(AREAS)))
        options = [c for c, (ca, cr, _) in enumerate(clubs) if ca == a and cr == run]
        club = int(rng.choice(options)) if options and rng.random() < 0.4 else None
        people[u] = Athlete(
            u, "run" if run else "ride", _offset(rng, AREAS[a], 6000),
            float(rng.lognormal(math.log(8000 if run else 40000), 0.35)),
            float(rng.choice([4.0, 18.0], p=[0.65, 0.35]) + rng.normal(0, 2)),
            float(rng.beta(2, 5)), float(rng.gamma(3.0, 0.8)), club,
            late_week if rng.random() < late_share else 0)
    members = defaultdict(list)
    for a in people.values():
        if a.club is not None:
            members[a.club].append(a.user)
    for group in members.values():
        for u in group:
            for v in group:
                if u != v and rng.random() < 0.3:
                    people[u].friends.add(v)
                    people[v].friends.add(u)
    for u in people:
        v = int(rng.integers(1, athletes + 1))
        if v != u:
            people[u].friends.add(v)
            people[v].friends.add(u)
    return people


@dataclass
class _World:
    cat: Catalogue
    fame: np.ndarray
    clubs: list
    people: dict[int, Athlete]
    done: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))
    done_by: dict[int, set] = field(default_factory=lambda: defaultdict(set))


def _utility(w: _World, a: Athlete, pool: np.ndarray) -> np.ndarray:
    """What the athlete would get from each route of the pool: near home, of their distance
    and climbing, famous, their club's, done by friends."""
    cat = w.cat
    ratio = np.log(cat.distance_m[pool] / a.distance_m)
    friends_done = np.array([len(w.done_by[int(cat.ids[i])] & a.friends) for i in pool])
    club_routes = w.clubs[a.club][2] if a.club is not None else set()
    return (-_dist(a.home, cat.lat[pool], cat.lon[pool]) / 3000.0 - 0.5 * (ratio / 0.3) ** 2
            - 0.5 * ((cat.climb_m_per_km[pool] - a.climb_m_per_km) / 5.0) ** 2 + 0.7 * w.fame[pool]
            + 1.5 * np.isin(pool, list(club_routes)) + 0.8 * np.log1p(friends_done))


def _outing(rng, w: _World, a: Athlete, pool: np.ndarray, week: int, events: list[Event]) -> None:
    """One activity: a known route again, or a new one drawn by utility (then maybe rated,
    and given kudos by friends)."""
    t = T0 + (week + rng.random()) * WEEK_S
    mine = w.done[a.user]
    if mine and rng.random() > a.explore:
        keys = list(mine)
        weights = np.array([mine[k] for k in keys], dtype=float) ** 0.7
        r = int(rng.choice(keys, p=weights / weights.sum()))
        events.append(Event(a.user, r, t, "done"))
        mine[r] += 1
        return
    utility = _utility(w, a, pool)
    fresh = np.array([int(w.cat.ids[i]) not in mine for i in pool])
    noisy = np.where(fresh, utility + rng.gumbel(0, 1.0, pool.size), -np.inf)
    if not np.isfinite(noisy).any():
        return
    j = int(np.argmax(noisy))
    r = int(w.cat.ids[pool[j]])
    events.append(Event(a.user, r, t, "done"))
    mine[r] += 1
    w.done_by[r].add(a.user)
    if rng.random() < 0.3:
        z = (utility[j] - utility[fresh].mean()) / (utility[fresh].std() + 1e-9)
        stars = float(np.clip(round(3.3 + 0.8 * z + rng.normal(0, 0.8)), 1, 5))
        events.append(Event(a.user, r, t + 3600, "rating", stars))
    for f in a.friends:
        if week >= w.people[f].joins_week and rng.random() < 0.15:
            events.append(Event(f, r, t + 7200, "kudos"))


def generate(seed: int = 1, athletes: int = 1200, routes: int = 1500, weeks: int = 26,
             late_share: float = 0.1, late_week: int = 20) -> Population:
    rng = np.random.default_rng(seed)
    cat, area, fame = _routes(rng, routes)
    clubs = _clubs(rng, cat, area)
    people = _athletes(rng, athletes, clubs, late_share, late_week)
    world = _World(cat, fame, clubs, people)
    is_run = cat.run_share >= 0.5
    reach = {u: np.flatnonzero((_dist(a.home, cat.lat, cat.lon) < (18000 if a.sport == "run" else 45000))
                               & (is_run == (a.sport == "run"))) for u, a in people.items()}
    events: list[Event] = []
    for week in range(weeks):
        for u, a in people.items():
            if week < a.joins_week or reach[u].size == 0:
                continue
            for _ in range(rng.poisson(a.per_week)):
                _outing(rng, world, a, reach[u], week, events)
    events.sort(key=lambda e: e.at)
    return Population(cat, events, people, weeks)
