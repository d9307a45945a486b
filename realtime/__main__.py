"""``python -m realtime --host HOST --port PORT``: run the ingest server."""

import argparse
import asyncio

from realtime.server import configure_logging, main_async


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m realtime", description="websocket ingest server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--database-url", help="default: TRACKER_DATABASE_URL")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    configure_logging(args.log_level)
    asyncio.run(main_async(args.host, args.port, args.database_url))


if __name__ == "__main__":
    main()
