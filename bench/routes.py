"""The route matcher's cost per activity with 100,000 routes stored.

    .venv/bin/python -m bench.routes [--routes 100000] [--activities 200] [--database-url URL] [--json]

Stores routes made in bulk (loops, out-and-backs and one-way lines of 2 to 60 km, random walks
of smooth segments, a quarter starting along another route) around four metro areas, so that
many share grid cells, with no activity behind them (``representative_id`` NULL). Then stores
public activities, 70% along a stored route (from its start, either way round), the others
along new ways, one fix a second with 4 m of GPS noise, and matches them as ``match_pending``
does (batches of 50: plan and write each, then refresh the routes touched), timing each part.
The read and the candidate query, parts of the plan, are timed again alone. A bench route's
first refresh also adopts a representative (reads and shapes the activity's points).

Default: a fresh SQLite file in a temporary directory. ``--database-url`` takes a PostgreSQL
server URL: a database of the bench's own is made there and dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from core.accounts.users import create_user
from core.activities.imports import record_track
from core.activities.tables import Activity
from core.routes.matching import candidates, pending, plan, refresh, write
from core.routes.shape import MIN_PATH_M, POLYLINE_MAX_POINTS, STEP_M, Shape, cells, resample, trim
from core.routes.tables import Route, RouteCell
from core.storage.engine import make_engine
from core.storage.points import stored_track
from core.storage.schema import migrate
from core.tracks.track import Track

METROS = [(51.50, -0.12, 0.35), (48.86, 2.35, 0.25), (40.71, -74.00, 0.25), (-33.87, 151.21, 0.15)]
SPREAD_M = 7000.0  # routes begin around a metro's centre with this scatter (one sigma, each axis)
M_PER_DEG = 111_320.0
BATCH = 50  # activities per match_pending call, as the worker
CHUNK = 2000  # routes per bulk insert
PARTS = ("plan", "read", "candidate_query", "write", "refresh")


def walk(rng, length_m: float, turning: float = 0.0) -> np.ndarray:
    """Points (metres) every STEP_M along a random walk of smooth segments of 300 m to 1.5 km,
    each gently curved, turning at the joins; closed when ``turning`` (a loop's 2 pi) is given."""
    n = max(int(length_m / STEP_M), 2)
    seg = rng.integers(12, 60, size=n // 12 + 2)
    turn = rng.normal(0.0, 0.004, seg.size)[np.repeat(np.arange(seg.size), seg)[:n]]
    joins = np.cumsum(seg)[:-1]
    joins = joins[joins < n]
    turn[joins] += rng.choice([-1.57, -0.6, 0.0, 0.6, 1.57], joins.size) + rng.normal(0.0, 0.15, joins.size)
    turn += (turning - turn.sum()) / n if turning else 0.0
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(turn)
    xy = np.vstack([[0.0, 0.0], np.cumsum(STEP_M * np.column_stack([np.cos(heading), np.sin(heading)]), 0)])
    return xy - np.linspace(0, 1, len(xy))[:, None] * xy[-1] if turning else xy


def way(rng, pool: list) -> tuple[np.ndarray, float, float, str, str]:
    """(metres from (lat0, lon0), lat0, lon0, kind, sport) of a way in a metro; a quarter follow
    a recent way of ``pool`` for a while."""
    m = rng.choice(len(METROS), p=[w for *_, w in METROS])
    sport = "ride" if rng.random() < 0.3 else "run"
    length = math.exp(rng.uniform(*np.log([15e3, 60e3] if sport == "ride" else [2e3, 21e3])))
    if pool[m] and rng.random() < 0.25:
        xy, lat0, lon0 = pool[m][rng.integers(len(pool[m]))]
        xy = xy[: int(len(xy) * rng.uniform(0.5, 0.9))]
        return np.vstack([xy, xy[-1] + walk(rng, length * rng.uniform(0.2, 0.5))[1:]]), lat0, lon0, "one_way", sport
    lat0 = METROS[m][0] + rng.normal(0, SPREAD_M) / M_PER_DEG
    lon0 = METROS[m][1] + rng.normal(0, SPREAD_M) / (M_PER_DEG * math.cos(math.radians(METROS[m][0])))
    kind = str(rng.choice(["loop", "out_and_back", "one_way"], p=[0.45, 0.2, 0.35]))
    xy = walk(rng, length / 2 if kind == "out_and_back" else length, rng.choice([-2, 2]) * np.pi * (kind == "loop"))
    xy = np.vstack([xy, xy[-2::-1]]) if kind == "out_and_back" else xy
    pool[m] = (pool[m] + [(xy, lat0, lon0)])[-500:]
    return xy, lat0, lon0, kind, sport


def latlon(xy: np.ndarray, lat0: float, lon0: float) -> tuple[np.ndarray, np.ndarray]:
    return lat0 + xy[:, 1] / M_PER_DEG, lon0 + xy[:, 0] / (M_PER_DEG * math.cos(math.radians(lat0)))


def insert_routes(job: tuple) -> list:
    """Make and insert routes ``first`` to ``first + count - 1``, shaped as the matcher shapes
    them; returns the ways of those whose id is a multiple of ``every``, to be followed."""
    url, seed, first, count, every = job
    rng, pool, now = np.random.default_rng([seed, first]), [[] for _ in METROS], datetime.now(UTC)
    routes, route_cells, kept = [], [], []
    while len(routes) < count:
        xy, lat0, lon0, kind, sport = made = way(rng, pool)
        lat, lon = latlon(xy, lat0, lon0)
        rlat, rlon, path_m = resample(lat, lon)
        keep = trim(rlat, rlon, [(lat[0], lon[0]), (lat[-1], lon[-1])])
        if keep.sum() * STEP_M < MIN_PATH_M:
            continue
        shape = Shape(rlat[keep], rlon[keep], (lat[0], lon[0]), (lat[-1], lon[-1]), kind, path_m, 1.0, None)
        keys, route_id = cells(shape.lat, shape.lon), first + len(routes)
        pick = np.unique(np.linspace(0, len(shape) - 1, min(len(shape), POLYLINE_MAX_POINTS)).round().astype(int))
        polyline = np.column_stack([shape.lat[pick], shape.lon[pick]]).round(5).tolist()  # shape.simplify, faster
        routes.append(dict(
            id=route_id, name=f"{path_m / 1000:.1f} km {kind.replace('_', ' ')}", kind=kind, shape=shape.to_bytes(),
            representative_id=None, polyline=polyline, start_lat=polyline[0][0], start_lon=polyline[0][1],
            cells=len(keys), path_m=path_m, distance_m=path_m, turns_per_km=rng.uniform(0.3, 3.0), speeds={},
            sports={sport: 1}, athletes=1, activities=1, created_at=now, updated_at=now))
        route_cells += [{"cell": k, "route_id": route_id} for k in keys]
        kept += [(route_id, made)] if route_id % every == 0 else []
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(Route.__table__.insert(), routes)
        conn.execute(RouteCell.__table__.insert(), route_cells)
    engine.dispose()
    return kept


def recorded(rng, xy: np.ndarray, lat0: float, lon0: float, sport: str, t0: float) -> Track:
    """The way done at a steady speed from either end, one fix a second with 4 m of GPS noise."""
    xy = xy[::-1] if rng.random() < 0.5 else xy
    along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
    s = np.arange(0.0, along[-1], rng.uniform(6, 9) if sport == "ride" else rng.uniform(2.6, 3.6))
    pts = np.column_stack([np.interp(s, along, xy[:, 0]), np.interp(s, along, xy[:, 1])])
    lat, lon = latlon(pts + rng.normal(0.0, 4.0, pts.shape), lat0, lon0)
    nan = np.full(s.size, np.nan)
    return Track(t0 + np.arange(s.size, dtype=float), lat, lon, np.full(s.size, 50.0), nan, nan.copy(), nan.copy(),
                 sport=sport)


def populate(engine, Session, args) -> dict:
    """The routes (made and inserted by up to four processes), then the activities to match:
    {activity id: the route it follows, or None}."""
    rng, followed = np.random.default_rng(args.seed), round(0.7 * args.activities)
    every, url = max(args.routes // max(followed, 1), 1), engine.url.render_as_string(hide_password=False)
    jobs = [(url, args.seed, first, min(CHUNK, args.routes + 1 - first), every)
            for first in range(1, args.routes + 1, CHUNK)]
    engine.dispose()
    with ProcessPoolExecutor(min(os.cpu_count() or 1, 4)) as workers:
        ways = [(route_id, w) for kept in workers.map(insert_routes, jobs) for route_id, w in kept][:followed]
    ways += [(None, way(rng, [[] for _ in METROS])) for _ in range(args.activities - len(ways))]
    activities = {}
    with Session() as s, s.begin():
        users = [create_user(s, f"athlete{i:03d}") for i in range(20)]
        for i in rng.permutation(len(ways)):
            (xy, lat0, lon0, _, sport), t0 = ways[i][1], 1_760_000_000 + 3600 * i
            activity = record_track(s, users[i % 20], recorded(rng, xy, lat0, lon0, sport, t0), visibility="public")
            activities[activity.id] = ways[i][0]
    if engine.dialect.name == "postgresql":  # new routes number on from the ids given; statistics as autovacuum's
        with engine.begin() as conn:
            conn.execute(text("SELECT setval(pg_get_serial_sequence('routes', 'id'), (SELECT max(id) FROM routes))"))
            conn.execute(text("ANALYZE"))
    return activities


def match(Session, activities: dict) -> dict:
    """What ``match_pending`` does, batch by batch, each part timed (seconds)."""
    took, compared, sharing = {k: [] for k in PARTS}, [], []
    outcome = {"matched": 0, "matched_followed": 0, "new": 0, "none": 0}
    aside, began = 0.0, time.perf_counter()
    while True:
        with Session() as s:
            if not (ids := pending(s, BATCH)):
                break
        touched = set()
        for activity_id in ids:
            with Session() as s:
                activity = s.get(Activity, activity_id)
                t0 = time.perf_counter()
                p = plan(s, activity)
                took["plan"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()  # set aside from here: the read and the candidate query, alone
                stored_track(s, activity)
                took["read"].append(time.perf_counter() - t0)
                if p.shape is not None:
                    t1, keys = time.perf_counter(), cells(p.shape.lat, p.shape.lon)
                    compared.append(len(candidates(s, keys)))
                    took["candidate_query"].append(time.perf_counter() - t1)
                    sharing.append(s.scalar(select(func.count(func.distinct(RouteCell.route_id)))
                                            .where(RouteCell.cell.in_(keys))))
                aside += time.perf_counter() - t0
            t0 = time.perf_counter()
            touched |= write(Session, p)
            took["write"].append(time.perf_counter() - t0)
            outcome["matched" if p.route_id is not None else ("new" if p.counted and p.shape else "none")] += 1
            outcome["matched_followed"] += p.route_id is not None and p.route_id == activities[activity_id]
        for route_id in sorted(touched):
            t0 = time.perf_counter()
            refresh(Session, route_id)
            took["refresh"].append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - began - aside
    ms = {k: np.array(v or [np.nan]) * 1000 for k, v in took.items()}
    return dict(match_s=elapsed, activities_per_s=len(took["plan"]) / elapsed, routes_refreshed=len(took["refresh"]),
                ms={k: {"p50": np.percentile(v, 50), "p95": np.percentile(v, 95), "p99": np.percentile(v, 99),
                        "max": v.max()} for k, v in ms.items()}, outcome=outcome,
                compared={"p50": np.median(compared or [0]), "max": max(compared or [0])},
                sharing_a_cell={"p50": np.median(sharing or [0]), "max": max(sharing or [0])})


def run(url: str, args) -> dict:
    engine = make_engine(url)
    migrate(engine)
    began = time.perf_counter()
    activities = populate(engine, sessionmaker(engine, expire_on_commit=False), args)
    f = dict(routes=args.routes, activities=len(activities), populate_s=time.perf_counter() - began,
             along_stored_routes=sum(r is not None for r in activities.values()))
    with engine.connect() as conn:
        f.update(conn.execute(text(
            "SELECT count(*) AS route_cells, count(DISTINCT cell) AS cells, (SELECT max(n) FROM (SELECT count(*) "
            "AS n FROM route_cells GROUP BY cell) AS c) AS most_in_a_cell, (SELECT count(*) FROM route_points) "
            "AS points FROM route_cells")).one()._asdict())
    f.update(match(sessionmaker(engine, expire_on_commit=False), activities))
    with engine.connect() as conn:
        lite, db = engine.dialect.name == "sqlite", engine.url.database
        f["database"] = ("SQLite " if lite else "PostgreSQL ") + conn.scalar(text(
            "SELECT sqlite_version()" if lite else "SHOW server_version"))
        f["size_bytes"] = (sum(os.path.getsize(db + x) for x in ("", "-wal") if os.path.exists(db + x)) if lite
                           else conn.scalar(text("SELECT pg_database_size(current_database())")))
    engine.dispose()
    return f


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=100_000, help="routes stored before matching")
    parser.add_argument("--activities", type=int, default=200, help="new activities to match")
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary directory; a "
                        "PostgreSQL server URL: a database of its own is made there and dropped at the end")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url, admin = args.database_url or f"sqlite:///{tmp}/routes.db", None
        if make_url(url).get_backend_name() == "postgresql":
            admin, name = make_engine(url, isolation_level="AUTOCOMMIT"), f"bench_routes_{uuid.uuid4().hex[:10]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(url).set(database=name).render_as_string(hide_password=False)
        try:
            f = run(url, args)
        finally:
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    f["url"] = make_url(url).render_as_string()
    if args.json:
        print(json.dumps(f, indent=2, default=float))
        return
    print(f"Route matcher with {f['routes']:,} routes stored ({f['route_cells']:,} route cells over {f['cells']:,} "
          f"grid cells, up to {f['most_in_a_cell']:,} routes in one) on {f['database']} ({f['url']}), "
          f"{f['size_bytes'] / 2**20:,.0f} MiB at the end")
    print(f"{f['activities']} new public activities ({f['points']:,} points, {f['along_stored_routes']} along stored "
          f"routes) matched as match_pending does, in batches of {BATCH}; set up in {f['populate_s']:.0f} s\n")
    print(f"{'ms per activity (per route for refresh)':42} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
    for part, label in zip(PARTS, ["plan: read, shape, candidates, compare", "  read the points (again, alone)",
                                   "  candidate query (again, alone)", "write (one transaction)",
                                   f"refresh ({f['routes_refreshed']} routes touched)"]):
        print(f"{label:42} " + " ".join(f"{f['ms'][part][q]:8.1f}" for q in ("p50", "p95", "p99", "max")))
    o, c, sh = f["outcome"], f["compared"], f["sharing_a_cell"]
    print(f"\nthroughput   {f['activities_per_s']:.2f} activities/s ({f['activities']} in {f['match_s']:.1f} s: "
          f"pending, plan, write, refresh)\noutcome      {o['matched']} matched ({o['matched_followed']} to the route "
          f"followed), {o['new']} new, {o['none']} none\ncandidates   compared per activity p50 {c['p50']:.0f}, "
          f"max {c['max']}; routes sharing a cell with it p50 {sh['p50']:,.0f}, max {sh['max']:,}")


if __name__ == "__main__":
    main()
