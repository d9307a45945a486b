"""The PostgreSQL group commit's cost to the ingest process: one statement (status check,
insert and commit together, ``FastInsert.checked``) against the transaction with COPY,
in the same run, by the number of batches of one point in a commit (the live load).

Prints the ingest side's CPU per commit and per batch, and the wall time per commit, for
each path; the ratio is the one statement's CPU over COPY's.

    TRACKER_BENCH_POSTGRES_URL=postgresql+psycopg://... python bench/ingest_commit.py [--commits 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from _ingest import make_devices

from realtime import store as store_module
from realtime.protocol import Point
from realtime.store import Store

GROUPS = (1, 4, 16, 64)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=os.environ.get("TRACKER_BENCH_POSTGRES_URL"))
    parser.add_argument("--commits", type=int, default=300, help="commits per group size and path")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each path; medians reported")
    args = parser.parse_args()
    if not args.database_url or not args.database_url.startswith("postgresql"):
        sys.exit("bench/ingest_commit.py measures PostgreSQL: set TRACKER_BENCH_POSTGRES_URL or --database-url")
    devices = make_devices(args.database_url, 64)
    store = Store(args.database_url)
    seq = [10**6]

    def batch(device) -> tuple[int, list[tuple]]:
        seq[0] += 1
        return device.activity_id, [Point(seq[0], 1.7e9 + seq[0], 46.0, 14.5).row(device.activity_id)]

    def run(group: int, checked: bool) -> tuple[float, float]:
        store_module.CHECKED_ROWS = 10**9 if checked else 0
        cpu, wall = time.process_time(), time.perf_counter()
        for k in range(args.commits):
            store.commit_batches([batch(devices[(k + i) % len(devices)]) for i in range(group)])
        return (time.process_time() - cpu) / args.commits, (time.perf_counter() - wall) / args.commits

    results: dict[tuple[int, bool], list[tuple[float, float]]] = {}
    try:
        for _ in range(args.rounds):
            for group in GROUPS:
                for checked in (False, True):
                    results.setdefault((group, checked), []).append(run(group, checked))
    finally:
        store.close()
    print(f"PostgreSQL group commit, batches of one point, {args.commits} commits x {args.rounds} rounds per cell "
          "(ingest side CPU, medians)")
    for group in GROUPS:
        line = [f"{group:>3} batches per commit:"]
        cpus = {}
        for checked in (False, True):
            cpu = statistics.median(c for c, _ in results[(group, checked)])
            wall = statistics.median(w for _, w in results[(group, checked)])
            cpus[checked] = cpu
            name = "one statement" if checked else "COPY"
            line.append(f"{name} {1e6 * cpu:,.0f} us CPU per commit ({1e6 * cpu / group:,.0f} per batch), "
                        f"{1e3 * wall:.2f} ms wall;")
        line.append(f"ratio {cpus[True] / cpus[False]:.2f}")
        print(" ".join(line))


if __name__ == "__main__":
    main()
