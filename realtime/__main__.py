"""``python -m realtime --host HOST --port PORT``: run the ingest server."""

import argparse
import asyncio

from realtime.server import RATE_PER_S, configure_logging, main_async


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
    asyncio.run(main_async(args.host, args.port, args.database_url, rate_per_s=args.rate))


if __name__ == "__main__":
    main()
