"""Live activity state shared through Redis: the ingest server writes, the dashboard reads.

Each activity in progress has one small JSON record (``tracker:live:<id>``: owner, sport,
status, last position and the live stats the device was last sent), kept for ten minutes
after its last update, and an index of recently updated activities. Nothing here is the
system of record: the points are in the database, and without Redis the dashboard
recomputes the same figures from them.
"""

from __future__ import annotations

import json
import time

from core.activities.live import LiveStats

KEY_PREFIX = "tracker:live:"
INDEX = "tracker:live:index"
TTL_S = 600


def record(activity_id: int, user_id: int, sport: str, status: str, live: LiveStats | None) -> dict:
    """The published state of one activity."""
    position = None
    if live is not None and live.anchor is not None:
        _, lat, lon = live.anchor
        position = [lat, lon, live.last_t]
    return {"activity_id": activity_id, "user_id": user_id, "sport": sport, "status": status,
            "stats": live.snapshot() if live is not None else None, "position": position,
            "updated": time.time()}


async def publish(redis, records: list[dict], ended: list[int]) -> None:
    """Write records and drop ended activities (redis.asyncio client), in one round trip."""
    if not records and not ended:
        return
    now = time.time()
    pipe = redis.pipeline(transaction=False)
    for r in records:
        pipe.set(f"{KEY_PREFIX}{r['activity_id']}", json.dumps(r), ex=TTL_S)
        pipe.zadd(INDEX, {str(r["activity_id"]): now})
    for activity_id in ended:
        pipe.delete(f"{KEY_PREFIX}{activity_id}")
        pipe.zrem(INDEX, str(activity_id))
    pipe.zremrangebyscore(INDEX, 0, now - TTL_S)
    await pipe.execute()


def read(redis, max_age_s: float = TTL_S) -> dict[int, dict]:
    """Records updated in the last ``max_age_s`` seconds (a synchronous client), by activity id."""
    ids = redis.zrangebyscore(INDEX, time.time() - max_age_s, "+inf")
    if not ids:
        return {}
    raw = redis.mget([f"{KEY_PREFIX}{i}" for i in ids])
    return {int(i): json.loads(r) for i, r in zip(ids, raw) if r}
