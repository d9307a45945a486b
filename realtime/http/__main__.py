"""``python -m realtime.http --host HOST --port PORT``: run the HTTP ingest service (uvicorn)."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from core.config import SettingsError, load_settings
from realtime.__main__ import tune_gc
from realtime.http.app import create_app
from realtime.logs import configure_logging
from realtime.server import RATE_PER_S
from realtime.store import Store

LIMIT_CONCURRENCY = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m realtime.http",
                                     description="HTTP ingest service: phone apps and the REST API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--database-url", help="default: TRACKER_DATABASE_URL")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--rate", type=float, default=RATE_PER_S,
                        help="requests per second allowed for one device token (bursts of twice that)")
    args = parser.parse_args()
    configure_logging(args.log_level)
    try:
        settings = load_settings()
    except SettingsError as exc:
        parser.exit(2, f"python -m realtime.http: {exc}\n")
    store = Store(args.database_url or settings.database_url)
    app = create_app(store, redis_url=settings.redis_url, rate_per_s=args.rate)
    tune_gc()
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=logging.getLevelName(
        logging.getLogger("realtime").level).lower(), access_log=False, proxy_headers=False,
        server_header=False, timeout_keep_alive=30, timeout_graceful_shutdown=30,
        # Beyond this many connections and requests at once, new ones get 503 (the process
        # may open 20,000 files); a slow body is cut after 30 s by the app itself.
        limit_concurrency=LIMIT_CONCURRENCY)
    try:
        uvicorn.Server(config).run()
    finally:
        store.close()


if __name__ == "__main__":
    main()
