"""``python -m realtime.health --url URL [--wait S] [--pid PID]``: exit 0 once the server
answers /healthz."""

import argparse
import http.client
import os
import sys
import time
import urllib.parse
import urllib.request


def healthy(url: str) -> bool:
    """Whether GET ``url`` answers 200; anything else (no answer, an answer that is not HTTP,
    such as another service on the port) is not."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (OSError, http.client.HTTPException, ValueError):
        return False


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be checked (None when it can): an http:// URL with a host is needed."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # a port that is no number or out of range raises ValueError
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if not parts.hostname:
        return "it names no host"
    if port == 0:
        return "port 0 is no port to connect to"
    return None


def running(pid: int) -> bool:
    """Whether process ``pid`` is still there."""
    try:
        os.kill(pid, 0)  # PermissionError: there, another user's
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m realtime.health")
    parser.add_argument("--url", default="http://127.0.0.1:8765/healthz")
    parser.add_argument("--wait", type=float, default=0.0, help="keep trying for this many seconds")
    parser.add_argument("--pid", type=int,
                        help="the server's process: stop waiting as soon as it has exited")
    args = parser.parse_args()
    reason = check_url(args.url)
    if reason is not None:
        parser.error(f"--url {args.url!r} is not a URL to check: {reason}")
    if not 0 <= args.wait < float("inf"):
        parser.error(f"--wait must be a number of seconds, 0 or more, not {args.wait}")
    deadline = time.monotonic() + args.wait
    while True:
        if healthy(args.url):
            return 0
        if args.pid is not None and not running(args.pid):
            print(f"no answer from {args.url}: its process ({args.pid}) has exited", file=sys.stderr)
            return 1
        if time.monotonic() >= deadline:
            print(f"no answer from {args.url}", file=sys.stderr)
            return 1
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
