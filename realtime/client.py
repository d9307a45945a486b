"""The device client on the command line: replay a recorded file as a live device, or sync
what the local buffer still holds.

    python -m realtime.client replay FILE --server ws://127.0.0.1:8765 --token TOKEN [--speed 10]
    python -m realtime.client sync --server ... --token ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time

from core.activities.tables import SPORTS
from realtime.buffer import LocalBuffer
from realtime.device import SYNC_BATCH_POINTS, DeviceClient, ServerRefused
from realtime.replay import replay


async def _main_async(args) -> int:
    buffer = LocalBuffer(args.buffer)
    client = DeviceClient(buffer, args.server, args.token, batch_points=args.batch)
    stop = asyncio.Event()
    runner = asyncio.create_task(client.run(stop))
    try:
        if args.command == "replay":
            await replay(client, args.file, args.speed, args.resume, args.sport)
        deadline = time.time() + args.timeout
        while buffer.unsynced_activities() and time.time() < deadline:
            if runner.done():
                runner.result()
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await runner
    left = buffer.count_points()
    print(json.dumps({"unsynced_points": left, "unsynced_activities": len(buffer.unsynced_activities())}))
    buffer.close()
    return 0 if not left else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realtime.client", description="device client")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("replay", "sync"):
        p = sub.add_parser(name)
        p.add_argument("--server", required=True)
        p.add_argument("--token", required=True)
        p.add_argument("--buffer", default="data/device.sqlite")
        p.add_argument("--timeout", type=float, default=3600.0, help="give up syncing after this many seconds")
        p.add_argument("--batch", type=int, default=SYNC_BATCH_POINTS, help="most points per message")
        if name == "replay":
            p.add_argument("file")
            p.add_argument("--speed", type=float, default=1.0, help="times real time; 0 = as fast as possible")
            p.add_argument("--sport", choices=SPORTS)
            p.add_argument("--resume", action="store_true", help="continue this file's unfinished recording")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return asyncio.run(_main_async(args))
    except ServerRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
