"""Many idle-ish devices on one server process: 5,000 connections, a point every 5 s each.

Measures the server process's memory per connection (resident set growth over the
connections' lifetime divided by their number) and the ack latency (p50, p99) while all
of them send a point every 5 s, which is the seed's run logging rate.

    python bench/connections.py [--connections 5000] [--seconds 30] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from _ingest import drive, make_devices, port_is_ingest, raise_fd_limit, rss_kib, start_ingest

WEBSOCKETS_DOC_KIB = 14


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()
    raise_fd_limit()
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'conns.db'}"
    started = time.time()
    devices = make_devices(url, args.connections)
    print(f"{args.connections} athletes with tokens and activities made in {time.time() - started:.0f} s", flush=True)
    ingest, port = start_ingest(url)
    port_is_ingest[port] = True
    samples = {}

    async def watch() -> None:
        await asyncio.sleep(0.5)
        samples["before"] = rss_kib(ingest.pid)
        while True:
            samples["peak"] = max(samples.get("peak", 0), rss_kib(ingest.pid))
            await asyncio.sleep(1)

    async def run():
        watcher = asyncio.create_task(watch())
        await asyncio.sleep(1)
        # Runners: a fix every interval (5 s, as the seed has phones log a run) at 3 m/s.
        result = await drive(port, devices, args.seconds, interval_s=args.interval, connect_spread_s=10.0,
                             point_every_s=args.interval, speed_mps=3.0)
        watcher.cancel()
        return result

    try:
        result = asyncio.run(run())
    finally:
        ingest.terminate()
        ingest.wait(60)
    per_conn = (samples["peak"] - samples["before"]) / args.connections
    print(f"connections held: {args.connections}, one point every {args.interval:.0f} s each, "
          f"{result.messages} acks in {result.seconds:.0f} s ({result.rate:,.0f} msg/s), errors: {result.errors}")
    print(f"ack latency p50 {1000 * result.percentile(0.5):.1f} ms, p99 {1000 * result.percentile(0.99):.1f} ms "
          f"(each connection's first message, which also loads its activity: p50 "
          f"{1000 * result.percentile(0.5, first=True):.0f} ms, p99 {1000 * result.percentile(0.99, first=True):.0f} ms)")
    print(f"server memory: {samples['before'] / 1024:.0f} MiB before, {samples['peak'] / 1024:.0f} MiB peak, "
          f"{per_conn:.1f} KiB per connection (websockets' own figure: about {WEBSOCKETS_DOC_KIB} KiB)")


if __name__ == "__main__":
    main()
