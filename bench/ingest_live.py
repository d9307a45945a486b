"""Live mode: one point per message over many connections, our full path against an echo server.

Runs, in the same session and with the same load generator: a bare ``websockets`` JSON echo
server, then the ingest server (parse, validate, ownership, group commit, live stats, ack).
Prints both message rates and the ratio, then the acknowledgement latency (p50, p99) with
the load set to half the measured rate, and what the seed's 10 million users would need.

    python bench/ingest_live.py [--connections 50] [--seconds 10] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from _ingest import cpu_seconds, drive, make_devices, port_is_ingest, start_echo, start_ingest

SEED_USERS = 10_000_000
# Each device rides at 27 km/h and logs a fix every 3 s, as the seed has phones do on a ride.
RIDING = {"point_every_s": 3.0, "speed_mps": 7.5}
POINT_EVERY_S = (3.0, 5.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs of each; medians are reported")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'live.db'}"
    devices = make_devices(url, args.connections)

    echo, echo_port = start_echo()
    ingest, port = start_ingest(url)
    port_is_ingest[port] = True
    base_rates, our_rates, errors = [], [], 0
    base_cpu, our_cpu = [], []  # server CPU seconds per message, and the load generator's share of a core
    try:
        # Alternate the two servers so a noisy neighbour hurts both alike.
        for _ in range(args.rounds):
            for proc_, port_, rates, cpu in ((echo, echo_port, base_rates, base_cpu), (ingest, port, our_rates, our_cpu)):
                before, gen_before, began = cpu_seconds(proc_.pid), time.process_time(), time.monotonic()
                result = asyncio.run(drive(port_, devices, args.seconds, **RIDING))
                wall = time.monotonic() - began
                rates.append(result.rate)
                cpu.append(((cpu_seconds(proc_.pid) - before) / max(result.messages, 1),
                            (time.process_time() - gen_before) / wall))
                if proc_ is ingest:
                    errors += result.errors
        echo.kill()
        rate = statistics.median(our_rates)
        half_interval = args.connections / (rate / 2)
        half = asyncio.run(drive(port, devices, args.seconds, interval_s=half_interval, **RIDING))
    finally:
        echo.kill()
        ingest.terminate()
        ingest.wait(30)
    base = statistics.median(base_rates)
    db = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"connections: {args.connections}, one point per message, {args.rounds} x {args.seconds:.0f} s each, "
          f"database: {db}")
    print(f"bare websockets JSON echo: {base:,.0f} msg/s  (runs: {', '.join(f'{r:,.0f}' for r in base_rates)})")
    print(f"ingest full path:          {rate:,.0f} msg/s  (runs: {', '.join(f'{r:,.0f}' for r in our_rates)}; "
          f"errors: {errors})")
    print(f"ratio ingest / echo:       {rate / base:.2f}")
    print(f"server CPU per message:    echo {1e6 * statistics.median(c for c, _ in base_cpu):.0f} us, "
          f"ingest {1e6 * statistics.median(c for c, _ in our_cpu):.0f} us; the load generator used "
          f"{statistics.median(g for _, g in base_cpu):.2f} of a core against the echo, "
          f"{statistics.median(g for _, g in our_cpu):.2f} against the ingest server")
    print(f"at half load ({half.rate:,.0f} msg/s): ack latency p50 {1000 * half.percentile(0.5):.2f} ms, "
          f"p99 {1000 * half.percentile(0.99):.2f} ms")
    for every in POINT_EVERY_S:
        need = SEED_USERS / every
        print(f"10M users, a point every {every:.0f} s: {need:,.0f} msg/s -> {need / rate:,.0f} ingest "
              f"processes (one core each) at the rate measured here")


if __name__ == "__main__":
    main()
