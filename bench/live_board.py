"""The Live page's Redis traffic: what one Redis core takes of the ingest processes' live
state (core/activities/live_board.py), for sizing Redis by the number of athletes recording.

Each ingest process publishes, once a second, the activities whose stats changed: a SET and
a ZADD each, pipelined. This publishes rounds of ``--batch`` records from ``--publishers``
concurrent clients for ``--seconds`` and prints records per second and per CPU-second of
the Redis server (read from /proc: run it on the machine that runs Redis).

    python bench/live_board.py [--redis-url redis://127.0.0.1:6379/13] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from _common import ROOT  # noqa: F401 - puts the project on the path
from _ingest import cpu_seconds

from core.activities import live_board
from core.activities.live import LiveStats

SEED_USERS = 10_000_000
POINT_EVERY_S = (3.0, 5.0)


def redis_pids() -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/comm") as fh:
                    if fh.read().strip() == "redis-server":
                        pids.append(int(entry.name))
            except OSError:
                continue
    return pids


async def publisher(url: str, first_id: int, batch: int, until: float, counts: list[int]) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    live = LiveStats("ride")
    t = time.time() - 600
    for k in range(20):
        live.add(t + 3 * k, 46.0 + k * 2e-4, 14.5)
    try:
        n = 0
        while time.monotonic() < until:
            records = [live_board.record(first_id + (n + i) % 100_000, 1, "ride", "active", live)
                       for i in range(batch)]
            await live_board.publish(redis, records, [])
            counts.append(batch)
            n += batch
    finally:
        await redis.aclose()


async def run(url: str, publishers: int, batch: int, seconds: float) -> int:
    counts: list[int] = []
    until = time.monotonic() + seconds
    await asyncio.gather(*(publisher(url, 1_000_000 * (k + 1), batch, until, counts) for k in range(publishers)))
    return sum(counts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", default=os.environ.get("TRACKER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--publishers", type=int, default=4, help="concurrent clients, as ingest processes")
    parser.add_argument("--batch", type=int, default=500, help="records per pipeline (one publish round)")
    args = parser.parse_args()
    pids = redis_pids()
    if not pids:
        raise SystemExit("bench/live_board.py: no redis-server process on this machine to measure")
    before, began = sum(cpu_seconds(p) for p in pids), time.monotonic()
    client_before = time.process_time()
    records = asyncio.run(run(args.redis_url, args.publishers, args.batch, args.seconds))
    wall = time.monotonic() - began
    redis_cpu = sum(cpu_seconds(p) for p in pids) - before
    client_cpu = time.process_time() - client_before
    import redis as redis_sync

    client = redis_sync.Redis.from_url(args.redis_url)
    record_bytes, index_bytes, kept = memory_per_record(client)
    client.flushdb()
    print(f"{args.publishers} publishers, {args.batch} records per pipeline, {wall:.0f} s: "
          f"{records / wall:,.0f} records/s")
    print(f"Redis server: {records / redis_cpu:,.0f} records per CPU-second "
          f"({redis_cpu / wall:.2f} of a core); the publishers: {records / client_cpu:,.0f} per CPU-second")
    for every in POINT_EVERY_S:
        need = SEED_USERS / every  # an activity is published when a point changed it
        print(f"10M athletes recording, a point every {every:.0f} s: {need:,.0f} records/s -> "
              f"{need / (records / redis_cpu):,.0f} Redis cores at the rate measured here")
    print(f"Redis memory per live activity ({kept:,} held, as MEMORY USAGE reports it): its record "
          f"{record_bytes:.0f} B, its entry in the live index {index_bytes:.0f} B -> "
          f"{SEED_USERS * (record_bytes + index_bytes) / 1e9:.1f} GB for 10M athletes recording")


def memory_per_record(client, sample: int = 200) -> tuple[float, float, int]:
    """Mean bytes of a live record's key (a sample of them) and of one entry of the live
    index, as Redis's MEMORY USAGE counts them (its own overhead per key included)."""
    keys = [k for k in client.zrange(live_board.INDEX, 0, sample - 1)]
    kept = client.zcard(live_board.INDEX)
    sizes = [client.memory_usage(f"{live_board.KEY_PREFIX}{k.decode()}", samples=0) or 0 for k in keys]
    index = client.memory_usage(live_board.INDEX, samples=0) or 0
    return sum(sizes) / max(len(sizes), 1), index / max(kept, 1), kept


if __name__ == "__main__":
    main()
