"""Sync mode: 500 points per message through the ingest server against a direct COPY.

Both write the same kind of rows into the same PostgreSQL ``route_points`` table in the
same run: first psycopg ``COPY`` straight into the table (the floor no server can beat),
then devices syncing their offline backlog through the websocket server. Prints points
per second for each and the ratio.

    TRACKER_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        python bench/ingest_sync.py [--connections 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid

from _ingest import drive, make_devices, port_is_ingest, start_ingest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.storage.engine import make_engine

POINTS_PER_MESSAGE = 500


def copy_rate(url: str, activity_ids: list[int], seconds: float) -> float:
    """Points per second written by COPY in 500-row transactions, like the server's batches."""
    engine = make_engine(url)
    raw = engine.raw_connection()
    cur = raw.cursor()
    t0 = time.time() - 86_000
    seq = 10_000_000
    written = 0
    cur.execute("SELECT id, user_id FROM activities WHERE id = ANY(%s)", (activity_ids,))
    owner = dict(cur.fetchall())
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for activity_id in activity_ids:
            with cur.copy("COPY route_points (activity_id, seq, t, lat, lon, ele, acc, hr, cad, user_id) FROM STDIN") as copy:
                for k in range(POINTS_PER_MESSAGE):
                    copy.write_row((activity_id, seq + k, t0 + (seq + k) * 0.01, 46.0, 14.5, None, None, None, None,
                                    owner[activity_id]))
            raw.commit()
            seq += POINTS_PER_MESSAGE
            written += POINTS_PER_MESSAGE
    elapsed = time.perf_counter() - start
    raw.close()
    engine.dispose()
    return written / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    server = os.environ.get("TRACKER_BENCH_POSTGRES_URL")
    if not server:
        sys.exit("set TRACKER_BENCH_POSTGRES_URL to a PostgreSQL server URL")
    name = f"tracker_syncbench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        devices = make_devices(url, args.connections)
        # COPY writes into activities of its own, so the server starts from empty ones.
        direct = copy_rate(url, [d.activity_id for d in make_devices(url, args.connections)], args.seconds)
        ingest, port = start_ingest(url)
        port_is_ingest[port] = True
        try:
            ours = asyncio.run(drive(port, devices, args.seconds, points_per_message=POINTS_PER_MESSAGE))
        finally:
            ingest.terminate()
            ingest.wait(30)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    points = ours.messages * POINTS_PER_MESSAGE / ours.seconds
    print(f"{POINTS_PER_MESSAGE} points per message, {args.connections} connections, {args.seconds:.0f} s each, PostgreSQL")
    print(f"direct psycopg COPY:   {direct:,.0f} points/s")
    print(f"through ingest server: {points:,.0f} points/s  (errors: {ours.errors})")
    print(f"ratio ingest / COPY:   {points / direct:.2f}")


if __name__ == "__main__":
    main()
