"""The leaderboard job: rebuild the Redis boards every three minutes (the seed's refresh
interval). Without Redis the boards are read from the database and there is nothing to do."""

from __future__ import annotations

import time

from core.social.leaderboards import REFRESH_EVERY_S, refresh_redis

__all__ = ["REFRESH_EVERY_S", "run_once"]


def run_once(Session, redis) -> dict:
    """One leaderboard refresh; returns what it did."""
    done = {}
    if redis is not None:
        began = time.monotonic()
        with Session() as s:
            sizes = refresh_redis(s, redis)
        done["leaderboards"] = {"boards": len(sizes), "athletes": sum(sizes.values()),
                                "seconds": round(time.monotonic() - began, 3)}
    return done
