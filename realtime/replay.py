"""Recorded files replayed as a device records: a fix every few seconds, at real time or faster."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import numpy as np

from core.activities.recording import GPS_INTERVAL_S
from core.activities.tables import SPORTS
from realtime.device import DeviceClient, ServerRefused

log = logging.getLogger("realtime.client")


def replay_points(path: str, sport: str | None = None) -> tuple[str, list[dict]]:
    """The points of a recorded file resampled like a phone logs them (``GPS_INTERVAL_S``)."""
    from core.tracks.formats import load_track
    track = load_track(path)
    sport = sport or (track.sport if track.sport in SPORTS else "run")
    return sport, device_points(track, sport)


def device_points(track, sport: str) -> list[dict]:
    """A track's cleaned fixes, one every ``GPS_INTERVAL_S`` of the sport, as point dicts."""
    from core.tracks.cleaning import clean_track
    # Replay the cleaned fixes: a recording's clock glitch cannot be replayed in real time.
    clean = clean_track(track)
    t, lat, lon, ele = clean.t, clean.lat, clean.lon, clean.ele
    step = GPS_INTERVAL_S[sport]
    points, last = [], -np.inf
    for i in range(t.size):
        if t[i] - last >= step:
            last = t[i]
            p = {"t": float(t[i]), "lat": float(lat[i]), "lon": float(lon[i])}
            if np.isfinite(ele[i]):
                p["ele"] = float(ele[i])
            points.append(p)
    return points


async def replay(client: DeviceClient, path: str, speed: float, resume: bool, sport: str | None) -> int:
    """Record a file as if live (``speed`` times real time; 0 = as fast as possible), then complete."""
    local_id = client.buffer.latest_open(source=str(path)) if resume else None
    sport, points = replay_points(path, sport)
    if not points:
        raise ServerRefused(f"{path} has no GPS points to replay")
    duration = points[-1]["t"] - points[0]["t"]
    # At real time the points carry today's clock; faster replays end now, so none is in the future.
    start = time.time() if speed == 1 else time.time() - duration - 60
    points = [dict(p, t=p["t"] - points[0]["t"] + start) for p in points]
    if local_id is None:
        local_id = client.start_activity(sport, title=Path(path).stem, source=str(path))
    act = client.buffer.activity(local_id)
    done = act["next_seq"]
    if done:
        # Keep the timeline the first run used: shift so the next point follows the last one recorded.
        last_t = client.buffer.live(local_id).last_t or points[0]["t"]
        offset = last_t - points[done - 1]["t"] if done <= len(points) else 0.0
        points = [dict(p, t=p["t"] + offset) for p in points]
    previous = None
    for p in points[done:]:
        if speed > 0 and previous is not None:
            await asyncio.sleep((p["t"] - previous) / speed)
        previous = p["t"]
        for cue in client.record_point(local_id, p):
            log.info("cue: %s", cue)
        await asyncio.sleep(0)
    client.command(local_id, "stop", at=points[-1]["t"] + 1)
    client.command(local_id, "complete", at=points[-1]["t"] + 2)
    return local_id
