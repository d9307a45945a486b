"""Training on Spark against the single-machine path, on the same data in one run: the route
recommender's collaborative fit, and the anomaly features of stored activities.

    TRACKER_SPARK_MASTER=local[2] .venv/bin/python -m bench.spark_training \
        [--activities 10000,100000] [--feature-activities 10000,100000] [--points 120]
        [--database-url URL] [--json]

1. Recommender, per size: a population with that many completed activities (``bench.recommend``'s
   generator: about ten per athlete, routes one per five athletes, ratings and dismissals);
   timed: the ``Recommender`` fit with Surprise's SVD (the single-machine default), and with
   Spark MLlib's ALS on implicit feedback (``core.spark.recommend``; the data is sent to
   Spark and the factors come back, both inside the time). Both then rank the same 500
   athletes; the mean overlap of their top 10s is printed.
2. Anomaly features, per size: that many completed activities of ``--points`` points each
   (windows of the real recordings, time-shifted), bulk inserted into a new SQLite file (or
   a new database on ``--database-url``'s PostgreSQL server, dropped afterwards; not timed);
   timed: the single-machine path (``recorded_track`` and ``track_features`` per activity,
   as scoring computes them), and ``core.spark.features.extract`` on Spark (JDBC reads by
   activity range, features on the executors).

The Spark session is started (a JVM) before any timing, and a warm-up job runs first. On
``local[N]`` Spark uses N cores of this machine; on a cluster, its executors.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench._common import load_settings, shared_tracks

ROUTES_PER_ATHLETE = 0.2
COMPARED = 500


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def recommender(spark, activities: int, seed: int = 7) -> dict:
    from bench.recommend import catalogue_of, events_of, generate, profiles_of, starts_of
    from core.recommend.model import Recommender
    from core.spark.recommend import als

    athletes = max(50, activities // 10)
    g = generate(athletes, max(50, int(athletes * ROUTES_PER_ATHLETE)), keep=10, seed=seed)
    cat, events = catalogue_of(g), events_of(g)
    done = sum(1 for e in events if e.kind == "done")
    began = time.perf_counter()
    single = Recommender(cat, events, collaborative="svd")
    single_s = time.perf_counter() - began
    began = time.perf_counter()
    on_spark = Recommender(cat, events, collaborative="als", factors=als(spark))
    spark_s = time.perf_counter() - began
    users = sorted({e.user for e in events})
    rng = random.Random(seed)
    sample = rng.sample(users, min(COMPARED, len(users)))
    profiles = profiles_of(g, sample, starts_of(g))
    overlaps = []
    for p in profiles.values():
        a = {x.route for x in single.rank(p, 10)}
        b = {x.route for x in on_spark.rank(p, 10)}
        if a and b:
            overlaps.append(len(a & b) / min(len(a), len(b)))
    return {"activities": done, "events": len(events), "athletes": athletes, "routes": len(cat),
            "single_s": round(single_s, 2), "spark_s": round(spark_s, 2),
            "top10_overlap": round(float(np.mean(overlaps)), 3) if overlaps else None}


def _windows(count: int, points: int, seed: int) -> list:
    from core.tracks.formats import outdoor_recordings

    real = [t for _, t in outdoor_recordings(shared_tracks()) if len(t) > points * 2]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        track = rng.choice(real)
        start = rng.randrange(0, len(track) - points)
        out.append(track.take(np.arange(start, start + points)))
    return out


def _database(kind_url: str | None, folder: Path):
    """A migrated database of its own: (url, engine, drop)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from core.storage.engine import make_engine
    from core.storage.schema import migrate

    if not kind_url:
        url = f"sqlite:///{folder / 'features.db'}"
        engine = make_engine(url)
        migrate(engine)
        return url, engine, lambda: engine.dispose()
    admin = make_engine(kind_url, isolation_level="AUTOCOMMIT")
    name = f"tracker_bench_spark_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(kind_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrate(engine)

    def drop():
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, engine, drop


def _fill(engine, tracks) -> list[int]:
    """Insert one athlete's completed activities with their points, in bulk."""
    from datetime import UTC, datetime

    from core.accounts.tables import User
    from core.activities.tables import Activity
    from core.storage.point_rows import RoutePoint

    with engine.begin() as conn:
        user_id = conn.execute(User.__table__.insert().values(username="bench_athlete", name="bench athlete", password_hash="x",
                                                              role="athlete")).inserted_primary_key[0]
        ids = []
        t0 = 1_600_000_000.0  # 2020; 100,000 activities ten minutes apart end in 2022, in the past
        acts = []
        for k, tr in enumerate(tracks):
            shift = t0 + k * 600.0 - float(tr.t[0])
            acts.append({"id": k + 1, "user_id": user_id, "sport": tr.sport, "status": "completed",
                         "title": "", "visibility": "public", "source": "demo",
                         "start_time": datetime.fromtimestamp(float(tr.t[0]) + shift, UTC),
                         "completed_at": datetime.fromtimestamp(float(tr.t[-1]) + shift, UTC),
                         "point_count": len(tr), "points_tier": "hot"})
            ids.append(k + 1)
        for i in range(0, len(acts), 5000):
            conn.execute(Activity.__table__.insert(), acts[i:i + 5000])
        batch = []
        for k, tr in enumerate(tracks):
            shift = t0 + k * 600.0 - float(tr.t[0])
            cols = [tr.t + shift, tr.lat, tr.lon, tr.ele, tr.acc, tr.hr, tr.cad]
            for j in range(len(tr)):
                batch.append({"activity_id": k + 1, "seq": j, "user_id": user_id,
                              **{name: (None if not np.isfinite(c[j]) else float(c[j]))
                                 for name, c in zip(("t", "lat", "lon", "ele", "acc", "hr", "cad"), cols)}})
            if len(batch) >= 50_000:
                conn.execute(RoutePoint.__table__.insert(), batch)
                batch = []
        if batch:
            conn.execute(RoutePoint.__table__.insert(), batch)
    return ids


def features(spark, settings, count: int, points: int, server: str | None) -> dict:
    from sqlalchemy.orm import sessionmaker

    from core.activities.tables import Activity
    from core.anomaly.training import stored_row
    from core.spark.features import extract

    tracks = _windows(count, points, seed=count)
    with tempfile.TemporaryDirectory() as folder:
        url, engine, drop = _database(server, Path(folder))
        try:
            began = time.perf_counter()
            ids = _fill(engine, tracks)
            fill_s = time.perf_counter() - began
            Session = sessionmaker(engine, expire_on_commit=False)
            began = time.perf_counter()
            single = {}
            with Session() as s:
                for activity_id in ids:
                    row = stored_row(s, s.get(Activity, activity_id))
                    if row is not None:
                        single[activity_id] = row
                    s.expunge_all()
            single_s = time.perf_counter() - began
            began = time.perf_counter()
            got = extract(spark, replace(settings, database_url=url))
            spark_s = time.perf_counter() - began
        finally:
            drop()
    same = sum(1 for k, row in single.items() if k in got
               and np.allclose(got[k][1], row, rtol=1e-9, atol=1e-9, equal_nan=True))
    return {"activities": count, "points": count * points, "load_s": round(fill_s, 1),
            "single_s": round(single_s, 2), "spark_s": round(spark_s, 2),
            "with_features": len(single), "same_features": same,
            "spark_only": len(set(got) - set(single))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activities", default="10000,100000", help="recommender sizes, comma-separated")
    parser.add_argument("--feature-activities", default="10000,100000", help="feature sizes, comma-separated")
    parser.add_argument("--points", type=int, default=120, help="points per activity (feature part)")
    parser.add_argument("--database-url", help="a PostgreSQL server for the feature part (default: SQLite)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from core.spark.session import SparkUnavailable, session

    try:
        settings = load_settings()
    except ValueError as exc:  # core.config.SettingsError: names the variable and why
        print(f"bench/spark_training.py: {exc}", file=sys.stderr)
        return 2
    if not settings.spark_master:
        settings = replace(settings, spark_master=os.environ.get("TRACKER_SPARK_MASTER") or "local[2]")
    try:
        spark = session(settings)
    except SparkUnavailable as exc:
        print(f"Spark cannot run here: {exc}", file=sys.stderr)
        return 2
    spark.range(1000).selectExpr("sum(id)").collect()  # warm-up
    out = {"spark_master": settings.spark_master, "cores": os.cpu_count(), "recommender": [], "features": []}
    for n in _sizes(args.activities):
        row = recommender(spark, n)
        out["recommender"].append(row)
        if not args.json:
            print(f"recommender, {row['activities']:>7} activities ({row['athletes']} athletes, {row['routes']} "
                  f"routes): single machine (Surprise SVD) {row['single_s']:>7.2f} s, Spark ALS "
                  f"{row['spark_s']:>7.2f} s, ratio {row['spark_s'] / max(row['single_s'], 1e-9):.2f}; "
                  f"top-10 overlap {row['top10_overlap']}", flush=True)
    for n in _sizes(args.feature_activities):
        row = features(spark, settings, n, args.points, args.database_url)
        out["features"].append(row)
        if not args.json:
            print(f"anomaly features, {row['activities']:>7} activities ({row['points']} points, loaded in "
                  f"{row['load_s']} s): single machine {row['single_s']:>8.2f} s, Spark {row['spark_s']:>8.2f} s, "
                  f"ratio {row['spark_s'] / max(row['single_s'], 1e-9):.2f}; same features "
                  f"{row['same_features']} of {row['with_features']} with features "
                  f"({row['spark_only']} on Spark only)", flush=True)
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
