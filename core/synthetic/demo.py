"""A believable demo dataset: athletes, a follow graph, and their runs and rides.

When athletes train follows their habits (``core.challenges.habits``: weekly routines,
holidays, injuries, fades and comebacks over the last 18 weeks): each activity is put on
a day one of them trained, and their dashboard visits and sign-ins are recorded per day
(``engagement_days``), so the drop-off model has a believable history to learn from.
Tracks are generated (smooth wandering routes around a few towns, at each athlete's own
pace, logged every 5 s for runs and 3 s for rides as devices do, with GPS noise). When the
real recordings in ../shared/data/tracks are present, some activities are derived from
them too, shifted in time and nudged in place. Two deliberately implausible activities
(a car drive saved as a run, and a run at 2 min/km) give moderation something to find.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session
from tqdm import tqdm

from core.accounts.tables import User
from core.accounts.users import create_user
from core.activities.imports import record_track
from core.activities.tables import SPORTS
from core.challenges.habits import generate
from core.challenges.tables import EngagementDay
from core.social.follows import follow
from core.synthetic.tracks import TOWNS, TYPICAL_SPEED_MPS, synthetic_track
from core.tracks.formats import readable_tracks
from core.tracks.track import Track

DEMO_LOGINS = {
    "alice": ("Alice Runner", "alice-demo-pass", "athlete"),
    "bob": ("Bob Rider", "bob-demo-pass", "athlete"),
    "moderator": ("Morgan Moderator", "moderator-demo-pass", "moderator"),
}
FIRST = ["Ana", "Ben", "Chloe", "Dmitri", "Eva", "Farid", "Greta", "Hugo", "Ines", "Jon", "Kira",
         "Luis", "Maja", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Uma", "Vid",
         "Wen", "Ximena", "Yusuf", "Zoe"]
LAST = ["Novak", "Silva", "Smith", "Dubois", "Kovac", "Okafor", "Berg", "Rossi", "Tanaka",
        "Horvat", "Costa", "Muller", "Walsh", "Petrov", "Garcia", "Lind"]


@dataclass
class DemoReport:
    """What ``build_demo`` created."""

    users: int
    activities: int
    points: int
    seconds: float


def _real_tracks(shared: Path | None) -> list[Track]:
    tracks = []
    for _, track in readable_tracks(shared):
        if track.sport in SPORTS and not track.indoor and track.gps_points >= 100 \
                and not track.meta.get("multisport"):
            tracks.append(track)
    return tracks


def _shifted(rng: random.Random, track: Track, start: float) -> Track:
    """The track moved to a new start time and nudged a few hundred metres."""
    ok = np.isfinite(track.t)
    out = track.take(ok)
    out.t = out.t - out.t.min() + start
    out.lat = out.lat + rng.uniform(-0.004, 0.004)
    out.lon = out.lon + rng.uniform(-0.004, 0.004)
    return out


def build_demo(s: Session, users: int = 300, activities: int = 2500, seed: int = 7,
               shared_tracks: Path | None = None, progress: bool = True) -> DemoReport:
    """Fill an empty database with the demo dataset (the caller commits)."""
    began = time.time()
    rng = random.Random(seed)
    now = time.time()
    people: list[User] = []
    for username, (name, password, role) in DEMO_LOGINS.items():
        people.append(create_user(s, username, name, password=password, role=role))
    while len(people) < users:
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        username = f"{name.split()[0].lower()}{len(people)}"
        people.append(create_user(s, username, name))
    athletes = [p for p in people if p.role == "athlete"]
    profile = {p.id: (rng.choice(TOWNS), rng.uniform(2.4, 3.8), rng.uniform(6.0, 9.0),
                      rng.random()) for p in athletes}
    for p in athletes:
        for other in rng.sample(athletes, min(len(athletes) - 1, rng.randint(5, 40))):
            if other.id != p.id:
                follow(s, p, other)
    alice, bob = people[0], people[1]
    for other in athletes[2:102]:
        follow(s, alice, other)
    follow(s, bob, alice)
    days = habit_days(s, athletes, activities, seed, now)

    real = _real_tracks(shared_tracks)
    total_points = 0
    bar = tqdm(total=activities, desc="demo activities", unit="act", disable=not progress)
    for k in range(activities):
        owner, day = days[k]
        owner = alice if k % 40 == 0 else owner
        (town, lat0, lon0), run_speed, ride_speed, ride_share = profile[owner.id]
        start = min(day + rng.uniform(6, 20) * 3600, now - rng.uniform(0.05, 0.5) * 86400)
        visibility = rng.choices(("public", "followers", "private"), (6, 3, 1))[0]
        if real and k % 12 == 0:
            track = _shifted(rng, rng.choice(real), start)
            title = f"{'Morning' if k % 2 else 'Evening'} {'run' if track.sport == 'run' else 'ride'}"
        else:
            sport = "ride" if rng.random() < ride_share else "run"
            minutes = rng.uniform(20, 70) if sport == "run" else rng.uniform(35, 110)
            speed = run_speed if sport == "run" else ride_speed
            track = synthetic_track(rng, sport, start, lat0 + rng.uniform(-0.03, 0.03),
                                    lon0 + rng.uniform(-0.03, 0.03), minutes, speed)
            title = f"{town} {'run' if sport == 'run' else 'ride'}"
        record_track(s, owner, track, title=title, visibility=visibility, source="demo")
        total_points += len(track)
        bar.update(1)
    bar.close()
    # Alice keeps one private run, which nobody else may ever see.
    record_track(s, alice, synthetic_track(rng, "run", now - 3600 * 5, TOWNS[0][1], TOWNS[0][2], 30, 2.9),
                 title="Private recovery jog", visibility="private", source="demo")
    # Deliberately implausible: a car drive saved as a run, and a run at 2 min/km.
    cheat = athletes[rng.randrange(3, len(athletes))]
    record_track(s, cheat, synthetic_track(rng, "run", now - 86400, TOWNS[1][1], TOWNS[1][2], 25, 14.0),
                 title="Morning run", visibility="public", source="demo")
    record_track(s, cheat, synthetic_track(rng, "run", now - 2 * 86400, TOWNS[1][1], TOWNS[1][2], 20, 8.3),
                 title="Tempo run", visibility="public", source="demo")
    s.flush()
    return DemoReport(users=len(people), activities=activities + 3, points=total_points,
                      seconds=time.time() - began)


HABIT_WEEKS = 18


def habit_days(s: Session, athletes: list[User], activities: int, seed: int, now: float) -> list[tuple[User, float]]:
    """Who trains when: ``activities`` (athlete, midnight UTC as Unix seconds) pairs drawn from
    the days the athletes' habits say they trained over the last HABIT_WEEKS weeks (ending
    yesterday), in time order; their visits and sign-ins are recorded per day on the way."""
    pop = generate(len(athletes), HABIT_WEEKS, seed)
    span = HABIT_WEEKS * 7
    first = datetime.fromtimestamp(now, UTC).date() - timedelta(days=span)
    rows = [dict(user_id=athletes[i].id, day=first + timedelta(days=int(d)), visits=int(pop.visits[i, d]),
                 sign_ins=int(pop.sign_ins[i, d])) for i, d in zip(*np.nonzero(pop.visits), strict=True)]
    for k in range(0, len(rows), 5000):
        s.execute(insert(EngagementDay), rows[k:k + 5000])
    # Half the activities go to "regulars", athletes taken in a random order who keep every
    # session their habits give them (a history the drop-off model can read); the other
    # half is spread over everyone else's training days, so every athlete has some.
    rng = np.random.default_rng(seed)
    regulars, budget = [], activities // 2
    for i in rng.permutation(len(athletes)):
        if budget <= 0:
            break
        n = int(pop.activities[i].sum())
        if 0 < n <= budget:
            regulars.append(i)
            budget -= n
    counts = pop.activities.copy()
    counts[regulars] = 0
    who, when = np.nonzero(pop.activities[regulars]) if regulars else (np.array([], int), np.array([], int))
    chosen = [(regulars[a], d) for a, d in zip(who, when, strict=True) for _ in range(pop.activities[regulars[a], d])]
    who, when = np.nonzero(counts)
    weight = counts[who, when].astype(float)
    rest = activities - len(chosen)
    if rest > 0 and len(who):
        pick = rng.choice(len(who), size=rest, replace=rest > len(who), p=weight / weight.sum())
        chosen += [(who[j], when[j]) for j in pick]
    while len(chosen) < activities:  # a population too small or idle to give enough training days
        chosen.append((int(rng.integers(len(athletes))), int(rng.integers(span))))
    midnight = datetime.combine(first, datetime.min.time(), tzinfo=UTC).timestamp()
    return sorted(((athletes[i], midnight + 86400.0 * int(d)) for i, d in chosen), key=lambda x: x[1])[:activities]


def database_is_empty(s: Session) -> bool:
    """Whether there are no users yet (the demo loads only into an empty database)."""
    return (s.scalar(select(func.count()).select_from(User)) or 0) == 0


def build_backlog(s: Session, count: int, athletes: int = 50, seed: int = 11) -> list[int]:
    """``count`` completed activities that nobody has scored yet, inserted in bulk (a scoring
    backlog for the worker in tests and benches: the demo's own size, quickly). Twelve
    generated tracks of 10 to 20 minutes are summarised once and stored again shifted in
    time and place. Returns the activity ids; the caller commits."""
    from core.activities.summary import apply_summary
    from core.activities.tables import Activity
    from core.storage.points import insert_new_points
    from core.tracks.cleaning import clean_track
    from core.tracks.stats import summarise

    rng = random.Random(seed)
    now = time.time()
    people = [create_user(s, f"backlog{seed}_{k}_{rng.randrange(10**6)}", f"Backlog athlete {k}")
              for k in range(athletes)]
    templates = []
    for k in range(12):
        sport = "run" if k % 2 == 0 else "ride"
        track = synthetic_track(rng, sport, 0.0, 46.05, 14.5, rng.uniform(10, 20), TYPICAL_SPEED_MPS[sport])
        templates.append((track, summarise(clean_track(track), points=len(track))))
    ids = []
    for k in range(count):
        track, summary = templates[k % len(templates)]
        start = now - rng.uniform(1, 60) * 86400
        dlat, dlon = rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05)
        a = Activity(user_id=people[k % athletes].id, sport=track.sport, status="completed",
                     title=f"Backlog {track.sport} {k}", visibility="public", source="demo")
        apply_summary(a, summary)
        a.shown_distance_m = a.distance_m  # new athletes, who hide nothing
        a.start_time = datetime.fromtimestamp(start, tz=UTC)
        a.completed_at = datetime.fromtimestamp(start + float(track.t[-1]) + 60, tz=UTC)
        s.add(a)
        s.flush()
        rows = [(a.id, i, start + float(track.t[i]), float(track.lat[i]) + dlat, float(track.lon[i]) + dlon,
                 float(track.ele[i]), None, float(track.hr[i]), None) for i in range(len(track))]
        insert_new_points(s, rows)
        ids.append(a.id)
    return ids
