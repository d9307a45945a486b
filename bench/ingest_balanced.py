"""Scaling efficiency: the live-mode load against one ingest process directly, and against two
behind HAProxy (realtime/balancer.py), in the same session and with the same load generator.

Prints, for each layout, the message rate (closed loop: each connection sends its next point
when the last is acknowledged), the ack latency (p50, p99) at half that rate, and messages
per CPU-second of every server-side process (the ingest processes, plus HAProxy behind the
balancer); then the ratio of the two layouts' messages per CPU-second, and each part's CPU per
message: HAProxy's own cost bounds the ratio whatever the ingest processes do. This machine has two
cores shared with the load generator, so two processes cannot show twice the throughput;
the ratio shows whether anything in the path (the balancer, a shared lock) costs more per
message than one process alone.

    python bench/ingest_balanced.py [--connections 200] [--seconds 10] [--rounds 3] [--database-url URL]

Default database: TRACKER_BENCH_POSTGRES_URL when set (two writers on one SQLite file take
turns at its write lock), else a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT
from _ingest import (
    LoadResult,
    cpu_seconds,
    drive,
    free_port,
    make_devices,
    port_is_ingest,
    raise_fd_limit,
    rss_kib,
    start_ingest,
)

from realtime import balancer

RIDING = {"point_every_s": 3.0, "speed_mps": 7.5}


class Layout:
    def __init__(self, name: str, port: int, pids, stop, balancer_pid=None):
        self.name, self.port, self.pids, self.stop = name, port, pids, stop
        self.balancer_pid = balancer_pid
        self.database_cpu: list[float] = []  # PostgreSQL's CPU seconds per message
        self.idle_rss = self.rss()  # KiB of every server process before any device connects
        self.connected_rss: int | None = None
        self.equal: list[tuple] = []  # runs at the same offered load: (result, msg per CPU-s, HAProxy's share)
        self.rates: list[float] = []
        self.per_cpu: list[float] = []
        # CPU seconds per message, closed loop: (the ingest processes, HAProxy), one pair per run.
        self.cost: list[tuple[float, float]] = []
        self.errors = 0

    def rss(self) -> tuple[int, int]:
        """KiB resident: the ingest processes, HAProxy."""
        proxy = rss_kib(self.balancer_pid) if self.balancer_pid else 0
        return sum(rss_kib(pid) for pid in self.pids()) - proxy, proxy

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())


def direct(url: str) -> Layout:
    proc, port = start_ingest(url)
    port_is_ingest[port] = True

    def stop():
        proc.terminate()
        proc.wait(30)
    return Layout("1 process, direct", port, lambda: [proc.pid], stop)


def balanced(url: str, processes: int = 2) -> Layout:
    raise_fd_limit()
    port, stats = free_port(), free_port()
    backends = [free_port() for _ in range(processes)]
    env = dict(os.environ, TRACKER_DATABASE_URL=url, PYTHONPATH=str(ROOT))
    cluster = balancer.Cluster(backends, "127.0.0.1", port, stats, ["--log-level", "WARNING", "--rate", "1000000"],
                               env=env)
    cluster.start()
    port_is_ingest[port] = True
    return Layout(f"{processes} processes behind HAProxy", port,
                  lambda: [p.pid for p in cluster.ingest] + [cluster.haproxy.pid], cluster.stop,
                  balancer_pid=cluster.haproxy.pid)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each; medians are reported")
    parser.add_argument("--processes", type=int, default=2, help="ingest processes behind the balancer")
    parser.add_argument("--database-url", default=os.environ.get("TRACKER_BENCH_POSTGRES_URL"),
                        help="default: TRACKER_BENCH_POSTGRES_URL, else a fresh SQLite file")
    args = parser.parse_args()
    try:
        balancer.haproxy_binary()
    except balancer.MissingBalancer as exc:
        sys.exit(f"bench/ingest_balanced.py: {exc}")
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'balanced.db'}"
    devices = make_devices(url, args.connections)
    layouts = [direct(url), balanced(url, args.processes)]
    try:
        # Alternate the layouts so a noisy neighbour hurts both alike. First as fast as each
        # takes it (closed loop), then both at the same offered rate (half the direct rate).
        for _ in range(args.rounds):
            for layout in layouts:
                result, per_cpu, share = measure(layout, devices, args.seconds)
                layout.cost.append(((1 - share) / per_cpu, share / per_cpu))
                layout.rates.append(result.rate)
                layout.per_cpu.append(per_cpu)
                layout.errors += result.errors
        offered = statistics.median(layouts[0].rates) / 2
        for _ in range(args.rounds):
            for layout in layouts:
                result, per_cpu, share = measure(layout, devices, args.seconds, interval_s=args.connections / offered)
                layout.equal.append((result, per_cpu, share))
                layout.errors += result.errors
    finally:
        for layout in layouts:
            layout.stop()
    db = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"connections: {args.connections}, one point per message, {args.rounds} runs of {args.seconds:.0f} s per "
          f"layout and load, database: {db}, {os.cpu_count()} cores shared with the load generator and the database")
    print("closed loop (as fast as acks come back):")
    for layout in layouts:
        print(f"  {layout.name:<28} {statistics.median(layout.rates):>7,.0f} msg/s  "
              f"{statistics.median(layout.per_cpu):>7,.0f} msg per server CPU-second  "
              f"(runs: {', '.join(f'{r:,.0f}' for r in layout.per_cpu)}; errors: {layout.errors})")
    print(f"the same offered load for both ({offered:,.0f} msg/s):")
    for layout in layouts:
        runs = layout.equal
        latencies = LoadResult(latencies=[x for r, _, _ in runs for x in r.latencies])
        share = statistics.median(s for _, _, s in runs)
        print(f"  {layout.name:<28} {statistics.median(r.rate for r, _, _ in runs):>7,.0f} msg/s  "
              f"{statistics.median(c for _, c, _ in runs):>7,.0f} msg per server CPU-second  "
              f"(runs: {', '.join(f'{c:,.0f}' for _, c, _ in runs)})  ack p50 "
              f"{1000 * latencies.percentile(0.5):.2f} ms, p99 {1000 * latencies.percentile(0.99):.2f} ms"
              + (f"; HAProxy {share:.0%} of the CPU" if layout.balancer_pid else ""))
    for layout in layouts:
        (ingest_after, proxy_after), (ingest_before, proxy_before) = layout.connected_rss, layout.idle_rss
        print(f"memory with every device connected, less before any, per connection: {layout.name}: ingest "
              f"{(ingest_after - ingest_before) / args.connections:.0f} KiB"
              + (f", HAProxy {(proxy_after - proxy_before) / args.connections:.1f} KiB" if layout.balancer_pid else ""))
    if url.startswith("postgresql"):
        print("PostgreSQL's CPU per message (all its processes on this machine): "
              + ", ".join(f"{layout.name} {1e6 * statistics.median(layout.database_cpu):.0f} us"
                          for layout in layouts))
    for label, pick in (("closed loop", lambda lay: statistics.median(lay.per_cpu)),
                        ("same offered load", lambda lay: statistics.median(c for _, c, _ in lay.equal))):
        one, two = (pick(layout) for layout in layouts)
        print(f"messages per server CPU-second, balanced / direct, {label}: {two / one:.2f}")
    # What the balancer alone costs: HAProxy forwards each message and its ack (a read and a
    # write each way), which no change to the ingest processes can remove.
    direct_us, (ingest_us, proxy_us) = (1e6 * statistics.median(c[0] for c in layouts[0].cost),
                                        [1e6 * statistics.median(c[k] for c in layouts[1].cost) for k in (0, 1)])
    same_load_us = 1e6 * statistics.median(s / c for _, c, s in layouts[1].equal)
    print(f"CPU per message, closed loop: the direct process {direct_us:.0f} us; behind HAProxy, the ingest "
          f"processes {ingest_us:.0f} us and HAProxy {proxy_us:.0f} us ({same_load_us:.0f} us at the same offered "
          f"load). With ingest processes exactly as efficient as the direct one, HAProxy's cost alone would hold "
          f"the closed-loop ratio at {direct_us / (direct_us + proxy_us):.2f}")


def postgres_cpu() -> float:
    """CPU seconds used so far by this machine's PostgreSQL processes (0 when none can be read)."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as fh:
                if fh.read().strip() not in ("postgres", "postmaster"):
                    continue
            total += cpu_seconds(int(entry.name))
        except OSError:
            continue
    return total


def measure(layout: Layout, devices, seconds: float, interval_s: float | None = None):
    """One run of the load: its result, messages per server CPU-second, HAProxy's share. The
    CPU is counted from the first message to the last ack (connecting is left out)."""
    marks, connected_rss = [], []

    def mark():
        if not marks:
            connected_rss.append(layout.rss())
        marks.append((layout.cpu(), cpu_seconds(layout.balancer_pid) if layout.balancer_pid else 0.0, postgres_cpu()))
    result = asyncio.run(drive(layout.port, devices, seconds, interval_s=interval_s, **RIDING,
                               on_ready=mark))
    (before, proxy_before, pg_before), (after, proxy_after, pg_after) = marks
    if layout.connected_rss is None:
        layout.connected_rss = connected_rss[0]
    used = after - before
    share = (proxy_after - proxy_before) / used if used else 0.0
    layout.database_cpu.append((pg_after - pg_before) / max(result.messages, 1))
    return result, (result.messages / used if used else float("nan")), share


if __name__ == "__main__":
    start = time.monotonic()
    main()
    print(f"({time.monotonic() - start:.0f} s)")
