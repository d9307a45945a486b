"""News feed latency at 100k and 1M activities, on SQLite and PostgreSQL.

Builds 100k users each following about 100 others, then 100k completed activities, times
the first feed page and the deepest page up to page 50 for 200 athletes,
adds activities up to 1M and times again. Prints p50 and p95 per database and size and the
1M / 100k ratio. PostgreSQL is used when TRACKER_BENCH_POSTGRES_URL (a server URL) is set.

    python bench/feed.py [--users 100000] [--sizes 100000 1000000] [--skip-sqlite]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import ROOT  # noqa: F401  (puts the project on sys.path)
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core.social.feed import feed_page
from core.storage.engine import make_engine
from core.storage.schema import migrate

FOLLOWS_PER_USER = 100
SAMPLE_USERS = 200
DEEP_PAGE = 50
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def insert_rows(engine, table: str, columns: list[str], rows_iter, chunk: int = 50_000) -> None:
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows_iter:
                    copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
        return
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        batch = []
        for row in rows_iter:
            batch.append(row)
            if len(batch) >= chunk:
                cur.executemany(sql, batch)
                batch.clear()
        if batch:
            cur.executemany(sql, batch)
        raw.commit()
    finally:
        raw.close()


def build_users(engine, users: int, rng: random.Random) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    insert_rows(engine, "users", ["id", "username", "name", "role", "default_visibility", "settings", "created_at"],
                ((i, f"u{i}", f"User {i}", "athlete", "followers", "{}", now) for i in range(1, users + 1)))

    def follows():
        for u in range(1, users + 1):
            for f in set(rng.randrange(1, users + 1) for _ in range(FOLLOWS_PER_USER)) - {u}:
                yield (u, f, now)
    insert_rows(engine, "friends", ["user_id", "friend_id", "created_at"], follows())


def add_activities(engine, first_id: int, count: int, users: int, rng: random.Random) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    vis = ("public",) * 6 + ("followers",) * 3 + ("private",)

    sqlite = engine.dialect.name == "sqlite"

    def rows():
        for i in range(first_id, first_id + count):
            start = (EPOCH + timedelta(seconds=rng.randrange(0, 300 * 86400))).replace(tzinfo=None)
            if sqlite:  # the text form SQLAlchemy writes, so comparisons match the app's own rows
                start = start.strftime("%Y-%m-%d %H:%M:%S.%f")
            yield (i, rng.randrange(1, users + 1), "run", "completed", "Run", rng.choice(vis), "demo",
                   now, start, 5000.0 + rng.random() * 5000, 0)
    insert_rows(engine, "activities", ["id", "user_id", "sport", "status", "title", "visibility", "source",
                                       "created_at", "start_time", "distance_m", "point_count"], rows())
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def measure(engine, users: int, rng: random.Random) -> dict:
    """Page 1, and the deepest page up to DEEP_PAGE, for SAMPLE_USERS athletes."""
    sample = rng.sample(range(1, users + 1), SAMPLE_USERS)
    first, deep, depth = [], [], []
    with Session(engine) as s:
        for uid in sample:
            start = time.perf_counter()
            page = feed_page(s, uid)
            first.append(time.perf_counter() - start)
            number, cursor, last = 1, page.next_cursor, None
            while cursor and number < DEEP_PAGE:
                start = time.perf_counter()
                page = feed_page(s, uid, cursor=cursor)
                last = time.perf_counter() - start
                number, cursor = number + 1, page.next_cursor
            if last is not None:
                deep.append(last)
                depth.append(number)
            s.expunge_all()
    return {"first": percentiles(first), "deep": percentiles(deep) if deep else None,
            "depth": statistics.median(depth) if depth else 0,
            "reached": sum(d == DEEP_PAGE for d in depth)}


def run_backend(label: str, url: str, users: int, sizes: list[int]) -> dict:
    rng = random.Random(42)
    engine = make_engine(url)
    migrate(engine)
    started = time.time()
    build_users(engine, users, rng)
    print(f"[{label}] {users} users and ~{users * FOLLOWS_PER_USER} follows built in {time.time() - started:.0f} s",
          flush=True)
    results, have = {}, 0
    for size in sizes:
        started = time.time()
        add_activities(engine, have + 1, size - have, users, rng)
        have = size
        print(f"[{label}] {size} activities ready ({time.time() - started:.0f} s)", flush=True)
        results[size] = measure(engine, users, rng)
        r = results[size]
        deep = (f"deepest page (median page {r['depth']:.0f}, {r['reached']} of {SAMPLE_USERS} feeds reach "
                f"page {DEEP_PAGE}) p50 {1000 * r['deep'][0]:.2f} ms p95 {1000 * r['deep'][1]:.2f} ms") \
            if r["deep"] else "every sampled feed fits on one page"
        print(f"[{label}] {size:>8} activities: page 1 p50 {1000 * r['first'][0]:.2f} ms "
              f"p95 {1000 * r['first'][1]:.2f} ms; {deep}", flush=True)
    engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    backends = []
    workdir = Path(tempfile.mkdtemp(prefix="feedbench-"))
    if not args.skip_sqlite:
        backends.append(("sqlite", f"sqlite:///{workdir / 'feed.db'}", None))
    pg = os.environ.get("TRACKER_BENCH_POSTGRES_URL")
    if pg:
        name = f"tracker_feedbench_{uuid.uuid4().hex[:8]}"
        admin = make_engine(pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        backends.append(("postgres", make_url(pg).set(database=name).render_as_string(hide_password=False),
                         (admin, name)))
    else:
        print("TRACKER_BENCH_POSTGRES_URL not set: PostgreSQL skipped")
    for label, url, cleanup in backends:
        try:
            results = run_backend(label, url, args.users, args.sizes)
            lo, hi = min(args.sizes), max(args.sizes)
            print(f"[{label}] page 1 p50 ratio {hi} / {lo}: {results[hi]['first'][0] / results[lo]['first'][0]:.2f}x")
        finally:
            if cleanup:
                admin, name = cleanup
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    for f in workdir.glob("*"):
        f.unlink()
    workdir.rmdir()


if __name__ == "__main__":
    main()
