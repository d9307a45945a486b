"""``python -m realtime --host HOST --port PORT``: run the ingest server."""

import argparse
import asyncio
import gc
import signal

from core.config import SettingsError, load_settings
from realtime.logs import configure_logging
from realtime.server import RATE_PER_S, IngestServer
from realtime.store import Store

# Garbage collector thresholds for a process holding thousands of long-lived connections.
# With CPython's defaults (700, 10, 10), full collections ran every few seconds while
# connections came in, each one walking every connection's objects and stopping the event
# loop: up to 275 ms at 5,000 connections, which made the p99 ack latency 40 to 300 ms in
# bench/connections.py. Young garbage still goes at every 50,000 net allocations.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    """Collect what startup left, freeze the rest (modules, engine, metadata: they live as
    long as the process, so no collection need walk them again), then set ``GC_THRESHOLDS``."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def main_async(host: str, port: int, database_url: str | None, rate_per_s: float = RATE_PER_S) -> None:
    store = Store(database_url)
    tune_gc()
    server = IngestServer(store, rate_per_s=rate_per_s, redis_url=load_settings().redis_url)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    try:
        await server.run(host, port, stop)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m realtime", description="websocket ingest server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--database-url", help="default: TRACKER_DATABASE_URL")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--rate", type=float, default=RATE_PER_S,
                        help="messages per second allowed on one connection (bursts of twice that)")
    args = parser.parse_args()
    configure_logging(args.log_level)
    try:
        load_settings()
    except SettingsError as exc:
        parser.exit(2, f"python -m realtime: {exc}\n")
    asyncio.run(main_async(args.host, args.port, args.database_url, rate_per_s=args.rate))


if __name__ == "__main__":
    main()
