"""Storage tiers: bytes per point in each tier and the time to open an archived activity.

    .venv/bin/python bench/tiers.py [--repeat 5]
    TRACKER_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/tiers.py

Loads every real run and ride with positions from the shared recordings into a fresh SQLite
file (and a fresh PostgreSQL database when ``TRACKER_BENCH_POSTGRES_URL`` is set), then
prints, per database:

- hot: bytes per point of ``route_points`` with its indexes (SQLite: its pages, from
  ``dbstat``, after VACUUM; PostgreSQL: ``pg_total_relation_size`` of every partition after
  VACUUM);
- cold: bytes per point of the archive's Parquet files (footers included), and the
  compression ratio (hot / cold);
- the median time to open an activity (``stored_track``: every point, as a map or a chart
  reads them) hot and archived, over the same activities in the same run, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import shared_tracks  # noqa: E402
from core.accounts.users import create_user  # noqa: E402
from core.activities.imports import record_track  # noqa: E402
from core.activities.tables import Activity  # noqa: E402
from core.config import load_settings  # noqa: E402
from core.storage import partitions, tiers  # noqa: E402
from core.storage.engine import make_engine, make_sessionmaker  # noqa: E402
from core.storage.points import stored_track  # noqa: E402
from core.storage.schema import migrate  # noqa: E402
from core.tracks.formats import load_track  # noqa: E402


def recordings() -> list:
    out = []
    for path in sorted(shared_tracks().rglob("*")):
        if path.suffix.lower() not in (".gpx", ".tcx", ".fit"):
            continue
        try:
            track = load_track(path.name, path.read_bytes())
        except Exception:  # noqa: BLE001 - a file this tracker refuses is not a recording to count
            continue
        if track.sport in ("run", "ride") and np.isfinite(track.lat).sum() >= 200 and np.isfinite(track.t).all():
            out.append(track)
    return out


def hot_bytes(engine) -> int:
    if engine.dialect.name == "postgresql":
        with Session(engine) as s:
            return partitions.table_bytes(s)
    with engine.connect() as conn:
        names = [r[0] for r in conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE tbl_name = 'route_points'")]
        marks = ", ".join("?" * len(names))
        return int(conn.exec_driver_sql(f"SELECT SUM(pgsize) FROM dbstat WHERE name IN ({marks})",
                                        tuple(names)).scalar())


def vacuum(engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM" if engine.dialect.name == "sqlite" else "VACUUM ANALYZE route_points")


def open_times(Session, ids: list[int], repeat: int) -> list[float]:
    """Per activity, the median seconds of ``repeat`` opens."""
    out = []
    with Session() as s:
        activities = [s.get(Activity, a) for a in ids]
        for a in activities:
            times = []
            for _ in range(repeat):
                began = time.perf_counter()
                stored_track(s, a)
                times.append(time.perf_counter() - began)
            out.append(statistics.median(times))
    return out


def measure(url: str, tracks: list, repeat: int, folder: Path) -> dict:
    os.environ["TRACKER_DATA_DIR"] = str(folder)
    os.environ.pop("TRACKER_ARCHIVE_URL", None)
    os.environ["TRACKER_TIER_HOT_READS"] = str(10 ** 9)  # the bench's reads bring nothing back
    engine = make_engine(url)
    migrate(engine)
    Session = make_sessionmaker(engine)
    with Session() as s, s.begin():
        user = create_user(s, "bench_tiers", "Bench")
        ids = [record_track(s, user, t, title=t.name or "", source="demo").id for t in tracks]
    vacuum(engine)
    with Session() as s:
        points = sum(s.get(Activity, a).point_count for a in ids)
    hot = hot_bytes(engine)
    hot_open = open_times(Session, ids, repeat)
    moved = tiers.run(Session, load_settings(), older_than_days=0)
    assert moved["archived"] == len(ids) and not moved["failed"], moved
    cold_bytes = tiers.status(Session, load_settings())["cold"]["bytes"]
    cold_open = open_times(Session, ids, repeat)
    engine.dispose()
    ratios = [c / h for c, h in zip(cold_open, hot_open)]
    return {"database": engine.dialect.name, "activities": len(ids), "points": points,
            "hot_bytes_per_point": round(hot / points, 2), "cold_bytes_per_point": round(cold_bytes / points, 2),
            "compression_ratio": round(hot / cold_bytes, 1),
            "open_hot_ms_median": round(1000 * statistics.median(hot_open), 2),
            "open_cold_ms_median": round(1000 * statistics.median(cold_open), 2),
            "open_cold_over_hot_median": round(statistics.median(ratios), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="opens of each activity per tier (their median counts)")
    args = ap.parse_args()
    tracks = recordings()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(measure(f"sqlite:///{tmp}/bench.db", tracks, args.repeat, Path(tmp) / "sqlite"))
        server = os.environ.get("TRACKER_BENCH_POSTGRES_URL")
        if server:
            from sqlalchemy import make_url, text

            admin = make_engine(server, isolation_level="AUTOCOMMIT")
            name = f"tracker_bench_tiers_{uuid.uuid4().hex[:8]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                url = make_url(server).set(database=name).render_as_string(hide_password=False)
                rows.append(measure(url, tracks, args.repeat, Path(tmp) / "postgres"))
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
        else:
            print("PostgreSQL skipped: set TRACKER_BENCH_POSTGRES_URL for its figures", file=sys.stderr)
    print(f"{'database':<11}{'activities':>11}{'points':>9}{'hot B/pt':>10}{'cold B/pt':>11}{'ratio':>7}"
          f"{'open hot':>10}{'open cold':>11}{'cold/hot':>10}")
    for r in rows:
        print(f"{r['database']:<11}{r['activities']:>11}{r['points']:>9}{r['hot_bytes_per_point']:>10.1f}"
              f"{r['cold_bytes_per_point']:>11.2f}{r['compression_ratio']:>6.1f}x{r['open_hot_ms_median']:>8.2f}ms"
              f"{r['open_cold_ms_median']:>9.2f}ms{r['open_cold_over_hot_median']:>9.2f}x")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
