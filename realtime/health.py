"""``python -m realtime.health --url URL [--wait S]``: exit 0 once the server answers /healthz."""

import argparse
import sys
import time
import urllib.request


def healthy(url: str) -> bool:
    """Whether GET ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m realtime.health")
    parser.add_argument("--url", default="http://127.0.0.1:8765/healthz")
    parser.add_argument("--wait", type=float, default=0.0, help="keep trying for this many seconds")
    args = parser.parse_args()
    deadline = time.monotonic() + args.wait
    while True:
        if healthy(args.url):
            return 0
        if time.monotonic() >= deadline:
            print(f"no answer from {args.url}", file=sys.stderr)
            return 1
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
