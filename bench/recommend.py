"""Route suggestions at scale: training time and memory, ranking latency, and serving the
precomputed lists from the database, with 100,000 athletes and 20,000 routes.

    .venv/bin/python -m bench.recommend [--athletes 100000] [--routes 20000] [--sample 2000]
        [--keep N] [--database-url URL] [--explain] [--json]

The population is generated with numpy (``core.recommend.population``'s week-by-week
simulation takes far too long at this size): routes start around six metro centres, each
with a sport, a distance, climbing per km and a fame; athletes live around a centre, with a
sport, a preferred distance and climbing, and about ten completions each (a few routes,
some repeated) over a year, drawn without replacement by a Gumbel draw over fame, nearness
to home and fit; 15% of the routes an athlete did are rated, 3% of athletes dismissed a
route, and each follows about eight athletes of their metro and sport.

1. Training: ``core.recommend.evaluation.choose`` (the validation choice: the four weeks
   before the last completion, as the worker's ``train``), then the ``Recommender`` fit with
   collaborative "svd" and the chosen blend. Memory: the peak resident set (Linux VmHWM,
   reset through /proc/self/clear_refs just before) less the resident set before, per step;
   where the peak cannot be reset, ``getrusage``'s ru_maxrss, the process's peak so far.
2. Ranking: ``Recommender.rank(profile, 10)`` per athlete of a sample, profiles built as
   ``core.recommend.service.profile`` builds them from the same activities.
3. Serving: users, public completed activities, their ``route_activities`` (counted, with
   their start), routes, ratings and dismissals (``route_signals``) and suggestions
   (``route_suggestions``) are bulk inserted into a migrated database: for the sample, the
   model's own ``rank(profile, KEEP)`` (50, as the worker stores them: ``suggestions_for``
   reads all of them); for every other athlete, the table's bulk, the next routes of their
   draw (near them, not done), ``--keep`` each (default 50, 20 past 20,000 athletes). Then
   ``core.recommend.service.suggestions_for(session, athlete, 10)`` is timed per sampled
   athlete, a new session each; then ``profile`` alone, and each SQL statement it ran,
   replayed alone through the driver with its rows fetched (the rest is Python and the ORM).
   ``--explain`` prints each statement's plan (EXPLAIN QUERY PLAN on SQLite, EXPLAIN on
   PostgreSQL); the plans are in ``--json`` too.

Default database: a fresh SQLite file in a temporary directory (no ANALYZE, as the app runs
it). ``--database-url`` takes a PostgreSQL server URL: a database of the bench's own is made
there (ANALYZE after the load, as autovacuum would) and dropped at the end.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import resource
import statistics
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from functools import partial

import numpy as np
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from core.accounts.tables import User
from core.activities.tables import Activity
from core.recommend.evaluation import choose
from core.recommend.model import Catalogue, Event, Profile, Recommender
from core.recommend.service import KEEP, VALIDATION_DAYS, profile, suggestions_for
from core.recommend.tables import RouteSignal, RouteSuggestion
from core.routes.tables import Route, RouteActivity
from core.storage.engine import make_engine
from core.storage.schema import migrate

METROS = [(51.507, -0.128, 0.25), (48.857, 2.352, 0.2), (40.713, -74.006, 0.2), (52.520, 13.405, 0.15),
          (48.208, 16.373, 0.1), (-33.869, 151.209, 0.1)]  # centre and share of routes and athletes
ROUTE_SPREAD_M, HOME_SPREAD_M = 8000.0, 9000.0  # one sigma, each axis
M_PER_DEG = 111_320.0
DAY_S = 86400.0
END = datetime(2026, 3, 1, tzinfo=UTC).timestamp()  # the last completion; the history is the year before
RUN_SHARE = 0.7
DONE_MEAN = 10  # completions per athlete
MAX_DISTINCT = 16  # distinct routes an athlete did, at most
RATED, DISMISSING, FOLLOWS = 0.15, 0.03, 8
CHUNK = 10_000  # rows per insert
WARMUP = 20
BULK_KEEP, BULK_PAST = 20, 20_000  # past this many athletes, the others' stored lists are this long
QUANTILES = (50, 95, 99)


# -- the population -------------------------------------------------------------------------


def generate(n_athletes: int, n_routes: int, keep: int, seed: int) -> dict:
    """Routes, athletes and completions as arrays (see the module docstring)."""
    rng = np.random.default_rng(seed)
    centre = np.array([(a, b) for a, b, _ in METROS])
    share = np.array([w for *_, w in METROS])
    cos = np.cos(np.radians(centre[:, 0]))

    def around(metro, spread):
        return (centre[metro, 0] + rng.normal(0, spread, metro.size) / M_PER_DEG,
                centre[metro, 1] + rng.normal(0, spread, metro.size) / (M_PER_DEG * cos[metro]))

    rm = rng.choice(len(METROS), n_routes, p=share)
    r_run = rng.random(n_routes) < RUN_SHARE
    r_lat, r_lon = around(rm, ROUTE_SPREAD_M)
    r_dist = np.where(r_run, np.exp(rng.uniform(np.log(2e3), np.log(30e3), n_routes)),
                      np.exp(rng.uniform(np.log(15e3), np.log(120e3), n_routes)))
    r_climb = rng.gamma(2.0, 4.0, n_routes)
    r_fame = rng.lognormal(0.0, 1.0, n_routes)

    am = rng.choice(len(METROS), n_athletes, p=share)
    a_run = rng.random(n_athletes) < RUN_SHARE
    a_lat, a_lon = around(am, HOME_SPREAD_M)
    a_dist = np.where(a_run, rng.lognormal(np.log(8e3), 0.4, n_athletes), rng.lognormal(np.log(45e3), 0.35, n_athletes))
    a_climb = rng.gamma(2.0, 4.0, n_athletes)
    n_done = 1 + rng.poisson(DONE_MEAN - 1, n_athletes)
    distinct = np.clip(np.round(n_done * rng.uniform(0.3, 0.9, n_athletes)), 1, MAX_DISTINCT).astype(int)
    distinct = np.minimum(distinct, n_done)

    # Each athlete's routes in the order drawn: the first ``distinct`` were done, the next
    # ``keep`` stand for their stored suggestions, the one after is the dismissed one.
    width = MAX_DISTINCT + keep + 1
    drawn = np.full((n_athletes, width), -1, dtype=np.int64)
    liking = np.zeros((n_athletes, width), dtype=np.float32)
    for m in range(len(METROS)):
        for run in (True, False):
            routes = np.flatnonzero((rm == m) & (r_run == run))
            people = np.flatnonzero((am == m) & (a_run == run))
            near = 4000.0 if run else 12000.0
            take = min(width, routes.size)
            for lo in range(0, people.size, 256):
                who = people[lo:lo + 256]
                dy = (r_lat[routes][None, :] - a_lat[who][:, None]) * M_PER_DEG
                dx = (r_lon[routes][None, :] - a_lon[who][:, None]) * M_PER_DEG * cos[m]
                w = (np.log(r_fame[routes])[None, :] - np.hypot(dx, dy) / near
                     - 0.5 * (np.log(r_dist[routes][None, :] / a_dist[who][:, None]) / 0.4) ** 2
                     - 0.5 * ((r_climb[routes][None, :] - a_climb[who][:, None]) / 6.0) ** 2).astype(np.float32)
                key = w - np.log(-np.log(rng.random(w.shape, dtype=np.float32) + np.float32(1e-12)))
                top = np.argpartition(-key, take - 1, axis=1)[:, :take] if take < routes.size else \
                    np.tile(np.arange(routes.size), (who.size, 1))
                order = np.argsort(-np.take_along_axis(key, top, 1), axis=1)
                top = np.take_along_axis(top, order, 1)
                drawn[who, :take] = routes[top]
                liking[who, :take] = np.take_along_axis(w, top, 1)
    distinct = np.minimum(distinct, (drawn >= 0).sum(1))

    # Completions: each distinct route once, the rest repeats skewed towards the first drawn.
    user = np.repeat(np.arange(n_athletes), n_done)
    nth = np.arange(user.size) - np.repeat(np.cumsum(n_done) - n_done, n_done)
    d = distinct[user]
    col = np.where(nth < d, nth, np.floor(d * rng.random(user.size) ** 2).astype(int))
    route = drawn[user, col]
    ok = route >= 0
    user, route = user[ok], route[ok]
    at = np.sort(rng.uniform(END - 365 * DAY_S, END, user.size))
    at = at[rng.permutation(at.size)]
    at[np.argmax(at)] = END
    dist = r_dist[route] * rng.normal(1.0, 0.02, route.size)
    gain = r_climb[route] * dist / 1000.0 * rng.normal(1.0, 0.1, route.size)
    s_lat = r_lat[route] + rng.normal(0, 300, route.size) / M_PER_DEG
    s_lon = r_lon[route] + rng.normal(0, 300, route.size) / (M_PER_DEG * np.cos(np.radians(r_lat[route])))

    # Ratings: of some routes done, following the liking with noise; one dismissal each.
    pu = np.repeat(np.arange(n_athletes), distinct)
    pc = np.arange(pu.size) - np.repeat(np.cumsum(distinct) - distinct, distinct)
    rated = rng.random(pu.size) < RATED
    pu, pc = pu[rated], pc[rated]
    lk = liking[pu, pc]
    stars = np.clip(np.round(3.0 + (lk - lk.mean()) / (lk.std() + 1e-9) + rng.normal(0, 0.8, lk.size)), 1, 5)
    dis_u = np.flatnonzero(rng.random(n_athletes) < DISMISSING)
    dis_r = drawn[dis_u, np.minimum(distinct[dis_u] + keep, width - 1)]
    dis_u, dis_r = dis_u[dis_r >= 0], dis_r[dis_r >= 0]
    sug = np.take_along_axis(drawn, distinct[:, None] + np.arange(keep)[None, :], 1)

    # Follows: about FOLLOWS athletes of the same metro and sport each.
    group = am * 2 + a_run
    follows = defaultdict(set)
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        if members.size > 1:
            picks = members[rng.integers(0, members.size, (members.size, FOLLOWS))]
            for a, row in zip(members.tolist(), picks.tolist()):
                follows[a + 1] = {b + 1 for b in row if b != a}
    return dict(r_lat=r_lat, r_lon=r_lon, r_dist=r_dist, r_climb=r_climb, r_run=r_run, a_run=a_run,
                user=user, route=route, at=at, dist=dist, gain=gain, s_lat=s_lat, s_lon=s_lon,
                rated_user=pu, rated_route=drawn[pu, pc], stars=stars, rated_at=END - rng.uniform(0, 365 * DAY_S, pu.size),
                dismiss_user=dis_u, dismiss_route=dis_r, suggested=sug, follows=dict(follows))


def catalogue_of(g: dict) -> Catalogue:
    n = g["r_lat"].size
    return Catalogue(np.arange(1, n + 1, dtype=np.int64), g["r_lat"], g["r_lon"], g["r_dist"], g["r_climb"],
                     g["r_run"].astype(float), [f"Route {i}" for i in range(1, n + 1)])


def events_of(g: dict) -> list[Event]:
    """What ``core.recommend.service.events`` reads from the database (ids from 1)."""
    out = [Event(u, r, t, "done") for u, r, t in zip((g["user"] + 1).tolist(), (g["route"] + 1).tolist(),
                                                     g["at"].tolist())]
    out += [Event(u, r, t, "rating", v) for u, r, t, v in zip((g["rated_user"] + 1).tolist(),
                                                               (g["rated_route"] + 1).tolist(),
                                                               g["rated_at"].tolist(), g["stars"].tolist())]
    out += [Event(u, r, END, "dismiss") for u, r in zip((g["dismiss_user"] + 1).tolist(),
                                                       (g["dismiss_route"] + 1).tolist())]
    return out


def starts_of(g: dict) -> dict[int, tuple[float, float]]:
    """Each athlete's median start (what ``service.profile`` takes as where they start)."""
    import pandas as pd

    frame = pd.DataFrame({"u": g["user"] + 1, "lat": g["s_lat"], "lon": g["s_lon"]}).groupby("u").median()
    return {int(u): (float(a), float(b)) for u, a, b in zip(frame.index, frame["lat"], frame["lon"])}


def profiles_of(g: dict, users: list[int], starts: dict) -> dict[int, Profile]:
    """Profiles as ``service.profile`` builds them from the athlete's activities."""
    mine = defaultdict(list)
    pick = np.flatnonzero(np.isin(g["user"] + 1, users))
    for i in pick.tolist():
        mine[int(g["user"][i]) + 1].append(i)
    dismissed = defaultdict(set)
    for u, r in zip((g["dismiss_user"] + 1).tolist(), (g["dismiss_route"] + 1).tolist()):
        dismissed[u].add(r)
    out = {}
    for u in users:
        rows = mine[u]
        sport = "run" if g["a_run"][u - 1] else "ride"
        lat, lon = starts[u]
        out[u] = Profile(u, sport, lat, lon, distance_m=statistics.median(g["dist"][i] for i in rows),
                         climb_m_per_km=statistics.median(g["gain"][i] / (g["dist"][i] / 1000.0) for i in rows),
                         done=dict(Counter(int(g["route"][i]) + 1 for i in rows)), dismissed=dismissed[u])
    return out


# -- measuring --------------------------------------------------------------------------------


def _status(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def measured(fn):
    """(result, seconds, peak growth in bytes, memory held after in bytes, how the peak was read)."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        how = "VmHWM reset before"
    except OSError:
        how = "ru_maxrss (process peak so far)"
    before = _status("VmRSS") or 0
    t0 = time.perf_counter()
    out = fn()
    took = time.perf_counter() - t0
    peak = _status("VmHWM") if how.startswith("VmHWM") else None
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out, took, max(peak - before, 0), (_status("VmRSS") or 0) - before, how


def quantiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000.0
    return {f"p{q}": float(np.percentile(ms, q)) for q in QUANTILES} | {"mean": float(ms.mean()), "n": int(ms.size)}


# -- the database -------------------------------------------------------------------------------


def insert(engine, table, rows) -> int:
    n = 0
    for lo in range(0, len(rows), CHUNK):
        with engine.begin() as conn:
            conn.execute(table.insert(), rows[lo:lo + CHUNK])
        n += len(rows[lo:lo + CHUNK])
    return n


def populate(engine, g: dict, lists: dict[int, list], keep: int) -> dict:
    """Everything ``suggestions_for`` reads, bulk inserted; seconds and rows per table."""
    n_users, n_routes = g["a_run"].size, g["r_lat"].size
    when = datetime.fromtimestamp(END, UTC)
    took, counts = {}, {}

    def load(name, table, rows):
        t0 = time.perf_counter()
        counts[name] = insert(engine, table, rows)
        took[name] = time.perf_counter() - t0

    load("users", User.__table__, [
        dict(id=u, username=f"athlete{u}", name=f"Athlete {u}", email=None, password_hash=None, role="athlete",
             default_visibility="public", settings={}, created_at=when) for u in range(1, n_users + 1)])
    user, route = g["user"] + 1, g["route"] + 1
    athletes = np.bincount(np.unique(route * (n_users + 1) + user) // (n_users + 1), minlength=n_routes + 1)
    done = np.bincount(route, minlength=n_routes + 1)
    last = np.zeros(n_routes + 1)
    np.maximum.at(last, route, g["at"])
    rows = []
    for i in range(n_routes):
        lat, lon, dist = float(g["r_lat"][i]), float(g["r_lon"][i]), float(g["r_dist"][i])
        line = [[round(lat + k * 0.004, 5), round(lon + k * 0.003, 5)] for k in range(4)]
        sport = "run" if g["r_run"][i] else "ride"
        rows.append(dict(
            id=i + 1, name=f"Route {i + 1}", kind="loop", representative_id=None, polyline=line,
            shape=np.array(line, dtype=np.float32).tobytes(), start_lat=lat, start_lon=lon, cells=4, path_m=dist,
            distance_m=dist, elevation_gain_m=float(g["r_climb"][i]) * dist / 1000.0,
            hilliness_m_per_km=float(g["r_climb"][i]), turns_per_km=1.0, speeds={},
            sports={sport: max(int(done[i + 1]), 1)}, athletes=max(int(athletes[i + 1]), 1),
            activities=max(int(done[i + 1]), 1),
            last_done_at=datetime.fromtimestamp(last[i + 1], UTC) if done[i + 1] else None,
            created_at=when, updated_at=when))
    load("routes", Route.__table__, rows)
    sport = np.where(g["r_run"][g["route"]], "run", "ride").tolist()
    starts = [datetime.fromtimestamp(t, UTC) for t in g["at"].tolist()]
    speed = np.where(g["r_run"][g["route"]], 3.0, 7.5)
    moving = (g["dist"] / speed).tolist()
    rows = [dict(id=i + 1, user_id=u, sport=sp, status="completed", title="", visibility="public", source="device",
                 created_at=t, start_time=t, completed_at=t, distance_m=d, moving_time_s=mv, elapsed_time_s=mv,
                 elevation_gain_m=e, point_count=int(mv), held=False)
            for i, (u, sp, t, d, mv, e) in enumerate(zip(user.tolist(), sport, starts, g["dist"].tolist(), moving,
                                                        g["gain"].tolist()))]
    load("activities", Activity.__table__, rows)
    rows = [dict(activity_id=i + 1, route_id=r, user_id=u, direction=1, counted=True, visibility="public", held=False,
                 points=int(mv), start_lat=a, start_lon=b, end_lat=a, end_lon=b, matched_at=t)
            for i, (u, r, a, b, mv, t) in enumerate(zip(user.tolist(), route.tolist(), g["s_lat"].tolist(),
                                                        g["s_lon"].tolist(), moving, starts))]
    load("route_activities", RouteActivity.__table__, rows)
    del rows
    signals = {(u, r, "rating"): (v, t) for u, r, v, t in zip(
        (g["rated_user"] + 1).tolist(), (g["rated_route"] + 1).tolist(), g["stars"].tolist(), g["rated_at"].tolist())}
    signals |= {(u, r, "dismiss"): (1.0, END) for u, r in zip((g["dismiss_user"] + 1).tolist(),
                                                              (g["dismiss_route"] + 1).tolist())}
    load("route_signals", RouteSignal.__table__, [
        dict(user_id=u, route_id=r, kind=k, value=v, at=datetime.fromtimestamp(t, UTC))
        for (u, r, k), (v, t) in signals.items()])
    rows = []
    for u in range(1, n_users + 1):
        if u in lists:
            picked = [(x.route, x.score, x.source, x.reason[:200]) for x in lists[u]]
        else:
            picked = [(r + 1, 1.0 - k / keep, "popular",
                       f"done by {max(int(athletes[r + 1]), 1)} athletes near where you start")
                      for k, r in enumerate(g["suggested"][u - 1].tolist()) if r >= 0]
        rows += [dict(user_id=u, route_id=r, rank=k + 1, score=sc, source=so, reason=re_, computed_at=when)
                 for k, (r, sc, so, re_) in enumerate(picked)]
    load("route_suggestions", RouteSuggestion.__table__, rows)
    return {"seconds": took, "rows": counts}


def label(sql: str) -> str:
    """A short name for a statement: its first table, what it selects first, what it joins."""
    s = " ".join(sql.split())
    first = re.search(r"FROM (\w+)", s)
    col = re.search(r"SELECT (\w+)\.(\w+)", s)
    joins = re.findall(r"JOIN (\w+)", s)
    name = first.group(1) if first else s[:30]
    if col and col.group(1) == name:
        name += f".{col.group(2)}"
    return name + "".join(f" JOIN {j}" for j in joins)


def serve(engine, sample: list[int]) -> dict:
    """``suggestions_for`` per sampled athlete (a new session each); then ``profile`` alone;
    then each SQL statement they ran, replayed alone through the driver with its rows fetched;
    and each statement's plan for the first sampled athlete."""
    Session = sessionmaker(engine, expire_on_commit=False)
    for u in sample[:WARMUP]:
        with Session() as s:
            suggestions_for(s, u, 10)
    ran = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        ran.append((label(statement), statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    took, returned = [], []
    try:
        for u in sample:
            with Session() as s:
                t0 = time.perf_counter()
                rows = suggestions_for(s, u, 10)
                took.append(time.perf_counter() - t0)
            returned.append(len(rows))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    alone = []
    for u in sample:
        with Session() as s:
            t0 = time.perf_counter()
            profile(s, u)
            alone.append(time.perf_counter() - t0)
    per_sql = defaultdict(list)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for name, statement, parameters in ran:
            t0 = time.perf_counter()
            cur.execute(statement, parameters)
            cur.fetchall()
            per_sql[name].append(time.perf_counter() - t0)
        raw.rollback()
        plans = {}
        lite = engine.dialect.name == "sqlite"
        for name, statement, parameters in ran:
            if name not in plans:
                cur.execute(("EXPLAIN QUERY PLAN " if lite else "EXPLAIN ") + statement, parameters)
                plans[name] = {"sql": " ".join(statement.split()),
                               "plan": [r[3] if lite else r[0] for r in cur.fetchall()]}
        raw.rollback()
    finally:
        raw.close()
    return {"ms": quantiles(took), "profile_ms": quantiles(alone), "returned": float(np.mean(returned)),
            "statements": {k: quantiles(v) | {"per_call": len(v) / len(sample)} for k, v in per_sql.items()},
            "plans": plans}


def database(url: str, g: dict, lists: dict, keep: int, sample: list[int]) -> dict:
    engine = make_engine(url)
    migrate(engine)
    t0 = time.perf_counter()
    loaded = populate(engine, g, lists, keep)
    loaded["total_s"] = time.perf_counter() - t0
    lite = engine.dialect.name == "sqlite"
    if not lite:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    out = {"load": loaded, **serve(engine, sample)}
    with engine.connect() as conn:
        out["database"] = ("SQLite " if lite else "PostgreSQL ") + conn.scalar(text(
            "SELECT sqlite_version()" if lite else "SHOW server_version"))
        db = engine.url.database
        out["size_bytes"] = (sum(os.path.getsize(db + x) for x in ("", "-wal") if os.path.exists(db + x)) if lite
                             else conn.scalar(text("SELECT pg_database_size(current_database())")))
    engine.dispose()
    return out


# -- the run ----------------------------------------------------------------------------------


def run(args, url: str) -> dict:
    f = {"athletes": args.athletes, "routes": args.routes, "sample": args.sample, "keep": args.keep,
         "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()[0]}
    t0 = time.perf_counter()
    g = generate(args.athletes, args.routes, args.keep, args.seed)  # the others' lists
    f["generate_s"], t0 = time.perf_counter() - t0, time.perf_counter()
    cat, evs, starts = catalogue_of(g), events_of(g), starts_of(g)
    sports = {u: "run" if r else "ride" for u, r in enumerate(g["a_run"].tolist(), start=1)}
    f["events_s"] = time.perf_counter() - t0
    f["events"] = dict(Counter(e.kind for e in evs))
    f["follows"] = sum(len(v) for v in g["follows"].values())

    chosen, t_choose, peak_choose, _, how = measured(partial(
        choose, cat, evs, sports, starts, END - VALIDATION_DAYS * DAY_S, END, g["follows"]))
    rec, t_fit, peak_fit, held, _ = measured(partial(
        Recommender, cat, evs, collaborative="svd", blend=chosen["blend"], follows=g["follows"]))
    f["training"] = {"choose_s": t_choose, "choose_peak_bytes": peak_choose, "fit_s": t_fit,
                     "fit_peak_bytes": peak_fit, "model_held_bytes": held, "memory": how,
                     "chosen": chosen.get("collaborative"), "validation_athletes": chosen.get("validation_athletes"),
                     "validation_hit_rate": chosen.get("validation_hit_rate"),
                     "ratings": len(rec.ratings), "svd_rows": rec.trainset.n_ratings}

    rng = np.random.default_rng(args.seed + 1)
    sample = sorted(int(u) for u in rng.choice(np.arange(1, args.athletes + 1), min(args.sample, args.athletes),
                                               replace=False))
    profiles = profiles_of(g, sample, starts)
    took, candidates, lists = [], [], {}
    for u in sample[:WARMUP]:
        rec.rank(profiles[u], 10)
    for u in sample:
        t0 = time.perf_counter()
        rec.rank(profiles[u], 10)
        took.append(time.perf_counter() - t0)
        candidates.append(rec.candidates(profiles[u]).size)
    for u in sample:
        lists[u] = rec.rank(profiles[u], KEEP)
    f["ranking"] = {"ms": quantiles(took), "candidates_p50": float(np.median(candidates)),
                    "candidates_max": int(max(candidates))}
    del rec, evs, chosen
    gc.collect()

    f["serving"] = database(url, g, lists, args.keep, sample)
    return f


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--athletes", type=int, default=100_000)
    parser.add_argument("--routes", type=int, default=20_000)
    parser.add_argument("--sample", type=int, default=2000, help="athletes ranked and served")
    parser.add_argument("--keep", type=int, help=f"suggestions stored per athlete outside the sample (default: "
                        f"{KEEP} as the worker, {BULK_KEEP} past {BULK_PAST:,} athletes); the sample's are always {KEEP}")
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary directory; a "
                        "PostgreSQL server URL: a database of its own is made there and dropped at the end")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--explain", action="store_true", help="print each serving statement's plan")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.keep is None:
        args.keep = KEEP if args.athletes <= BULK_PAST else BULK_KEEP
    with tempfile.TemporaryDirectory() as tmp:
        url, admin = args.database_url or f"sqlite:///{tmp}/recommend.db", None
        if make_url(url).get_backend_name() == "postgresql":
            admin, name = make_engine(url, isolation_level="AUTOCOMMIT"), f"bench_recommend_{uuid.uuid4().hex[:10]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(url).set(database=name).render_as_string(hide_password=False)
        began = time.perf_counter()
        try:
            f = run(args, url)
        finally:
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    f["url"], f["total_s"] = make_url(url).render_as_string(), time.perf_counter() - began
    if args.json:
        print(json.dumps(f, indent=2, default=float))
        return
    report(f, args.explain)


def report(f: dict, explain: bool) -> None:
    t, r, sv = f["training"], f["ranking"], f["serving"]
    ev = f["events"]
    mib = 2**20
    print(f"Route suggestions with {f['athletes']:,} athletes and {f['routes']:,} routes on {sv['database']} "
          f"({f['url']}), {sv['size_bytes'] / mib:,.0f} MiB loaded; "
          f"{f['cpus']} cores, load average {f['load_average_at_start']:.1f} at the start")
    print(f"population generated in {f['generate_s']:.1f} s (events built in {f['events_s']:.1f} s): "
          f"{ev.get('done', 0):,} completions, {ev.get('rating', 0):,} ratings, {ev.get('dismiss', 0):,} dismissals, "
          f"{f['follows']:,} follows; the whole run took {f['total_s'] / 60:.1f} min")
    rows = sv["load"]["rows"]
    print(f"database loaded in {sv['load']['total_s']:.0f} s, {CHUNK:,} rows per insert: "
          + ", ".join(f"{rows[k]:,} {k} ({sv['load']['seconds'][k]:.0f} s)" for k in rows)
          + f"; suggestions stored: the sample's {KEEP} each from rank(profile, {KEEP}), the others' {f['keep']} each "
            "(the next routes of their draw)")
    print(f"training: {t['ratings']:,} rated pairs, {t['svd_rows']:,} SVD rows with the negatives; choose judged "
          f"{t['validation_athletes']:,} athletes and chose {t['chosen']}; memory: {t['memory']}\n")
    print(f"{'training':44} {'seconds':>9} {'peak MiB':>9}")
    print(f"{'choose (validation choice)':44} {t['choose_s']:9.1f} {t['choose_peak_bytes'] / mib:9.0f}")
    print(f"{'Recommender fit (svd, chosen blend)':44} {t['fit_s']:9.1f} {t['fit_peak_bytes'] / mib:9.0f}")
    print(f"{'  model held after the fit':44} {'':9} {t['model_held_bytes'] / mib:9.0f}\n")
    print(f"{'ms per athlete':44} {'p50':>9} {'p95':>9} {'p99':>9} {'mean':>9} {'n':>6}")
    line = "{:44} " + " ".join(["{:9.2f}"] * 4) + " {:6d}"
    m = r["ms"]
    print(line.format(f"rank(profile, 10) ({r['candidates_p50']:.0f} candidates p50)", m["p50"], m["p95"], m["p99"],
                      m["mean"], m["n"]))
    m = sv["ms"]
    print(line.format(f"suggestions_for(s, user, 10) ({sv['returned']:.1f} back)", m["p50"], m["p95"], m["p99"],
                      m["mean"], m["n"]))
    m = sv["profile_ms"]
    print(line.format("  of which profile(s, user) (again, alone)", m["p50"], m["p95"], m["p99"], m["mean"], m["n"]))
    print("  each statement again, alone (driver, rows fetched):")
    for name, m in sorted(sv["statements"].items(), key=lambda kv: -kv[1]["mean"] * kv[1]["per_call"]):
        print(line.format(f"    {name}"[:44], m["p50"], m["p95"], m["p99"], m["mean"], m["n"]))
    if explain:
        print()
        for name, p in sv["plans"].items():
            print(f"{name}\n  {p['sql']}\n" + "".join(f"    {x}\n" for x in p["plan"]))


if __name__ == "__main__":
    main()
