"""Replay runs and rides as many concurrent live devices (demo data and load tests).

Each simulated device is an ordinary ``DeviceClient`` with its own offline buffer,
recording a track (a real one from ../shared/data/tracks when present, a generated one
otherwise) at ``--speed`` times real time, optionally dropping its network now and then.
Simulated phones (``--phones``) send their fixes to the HTTP service as Traccar Client does
(the OsmAnd protocol, one fix per request, kept in the phone until it is answered 200).

    python -m realtime.simulate --server ws://127.0.0.1:8765 --devices 5 --speed 1 [--drop-every 60]
    python -m realtime.simulate --devices 0 --phones 2 --http http://127.0.0.1:8766
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from core.accounts.tokens import create_device_token
from core.accounts.users import create_user, user_by_name, users_with_role
from core.activities.tables import SPORTS
from core.config import load_settings
from core.social.follows import followed_ids
from core.storage.engine import make_engine, make_sessionmaker
from core.storage.schema import migrate
from core.synthetic.tracks import TOWNS, TYPICAL_SPEED_MPS, synthetic_track
from core.tracks.formats import load_track, track_files
from core.tracks.formats.common import TrackFileError
from realtime.buffer import LocalBuffer
from realtime.device import DeviceClient
from realtime.replay import device_points

log = logging.getLogger("realtime.simulate")

PHONE_RETRY_S = 2.0  # how long a phone waits before sending its buffer again after a failure


def device_tokens(count: int, seed: int, name: str = "simulator") -> list[tuple[str, str]]:
    """(username, token) for ``count`` athletes: demo athletes when there are any."""
    engine = make_engine()
    migrate(engine)
    Session = make_sessionmaker(engine)
    rng = random.Random(seed)
    out = []
    with Session() as s, s.begin():
        athletes = users_with_role(s, "athlete", limit=500)
        # On the demo data, record as athletes alice follows, so her Live page shows them.
        alice = user_by_name(s, "alice")
        followed = set(followed_ids(s, alice.id)) if alice is not None else set()
        if len([a for a in athletes if a.id in followed]) >= count:
            athletes = [a for a in athletes if a.id in followed]
        while len(athletes) < count:
            athletes.append(create_user(s, f"sim{len(athletes)}_{rng.randrange(10**6)}", "Simulated athlete"))
        for user in rng.sample(athletes, count):
            _, token = create_device_token(s, user, name=name)
            out.append((user.username, token))
    engine.dispose()
    return out


def track_points(rng: random.Random, real: list[Path]) -> tuple[str, list[dict]]:
    """A sport and points sampled like a phone logs them, starting now."""
    now = time.time()
    if real and rng.random() < 0.6:
        path = rng.choice(real)
        try:
            track = load_track(path)
        except TrackFileError:
            track = None
        if track is not None and track.sport in SPORTS and track.gps_points > 100 and not track.indoor:
            return _sampled(track, now)
    sport = rng.choice(SPORTS)
    _, lat0, lon0 = next(town for town in TOWNS if town[0] == "Ljubljana")
    track = synthetic_track(rng, sport, now, lat0 + rng.uniform(-0.05, 0.05), lon0 + rng.uniform(-0.05, 0.05),
                            minutes=rng.uniform(20, 60), speed_mps=TYPICAL_SPEED_MPS[sport])
    return _sampled(track, now)


def _sampled(track, start: float) -> tuple[str, list[dict]]:
    points = device_points(track, track.sport)
    return track.sport, [dict(p, t=p["t"] - points[0]["t"] + start) for p in points]


async def simulate_device(index: int, server: str, username: str, token: str, speed: float,
                          drop_every_s: float | None, workdir: Path, real: list[Path], seed: int,
                          rounds: int) -> int:
    """One device recording ``rounds`` activities; returns points recorded."""
    rng = random.Random(seed + index)
    buffer = LocalBuffer(workdir / f"device-{index}.sqlite")
    client = DeviceClient(buffer, server, token)
    stop = asyncio.Event()
    runner = asyncio.create_task(client.run(stop))
    # A recording left open by an earlier run of the simulator is finished first.
    while (left_open := buffer.latest_open()) is not None:
        if buffer.activity(left_open)["next_seq"] == 0:
            client.command(left_open, "discard")
        else:
            client.command(left_open, "stop")
            client.command(left_open, "complete")
    recorded = 0
    try:
        for _ in range(rounds):
            sport, points = track_points(rng, real)
            if speed != 1:
                shift = time.time() - points[-1]["t"] - 1
                points = [dict(p, t=p["t"] + shift) for p in points]
            local_id = client.start_activity(sport, title=f"Live {sport}")
            last_drop = time.monotonic()
            for k, p in enumerate(points):
                if k and speed > 0:
                    await asyncio.sleep((p["t"] - points[k - 1]["t"]) / speed)
                client.record_point(local_id, p)
                recorded += 1
                if drop_every_s and time.monotonic() - last_drop > drop_every_s:
                    last_drop = time.monotonic()
                    log.info("device %d drops its network", index)
                    await client.drop_connection()
            client.command(local_id, "stop", at=points[-1]["t"] + 1)
            client.command(local_id, "complete", at=points[-1]["t"] + 2)
        while buffer.unsynced_activities():
            if runner.done():
                runner.result()  # the device was refused for good (its token): say why
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await runner
        buffer.close()
    log.info("device %d (%s) done: %d points", index, username, recorded)
    return recorded


def _send_fix(url: str, params: dict) -> int:
    """One OsmAnd-protocol request; the HTTP status (0 when the service is unreachable)."""
    try:
        with urllib.request.urlopen(f"{url}/?{urllib.parse.urlencode(params)}", timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


async def simulate_phone(index: int, url: str, username: str, token: str, speed: float, real: list[Path],
                         seed: int, rounds: int, quiet_s: float) -> int:
    """One phone recording ``rounds`` activities through the HTTP service, quiet for
    ``quiet_s`` between them (the service completes an activity once its phone goes quiet);
    returns fixes the service stored."""
    rng = random.Random(seed + 10_000 + index)
    buffer: list[dict] = []  # the phone's offline buffer: a fix leaves it once answered 200
    stored = 0
    for _ in range(rounds):
        _, points = track_points(rng, real)
        if speed != 1:
            shift = time.time() - points[-1]["t"] - 1
            points = [dict(p, t=p["t"] + shift) for p in points]
        for k, p in enumerate(points):
            if k and speed > 0:
                await asyncio.sleep((p["t"] - points[k - 1]["t"]) / speed)
            if p.get("lat") is None:
                continue
            fix = {"id": token, "timestamp": round(p["t"], 1), "lat": p["lat"], "lon": p["lon"]}
            if p.get("ele") is not None:
                fix["altitude"] = p["ele"]
            buffer.append(fix)
            while buffer:
                status = await asyncio.to_thread(_send_fix, url, buffer[0])
                if status == 200:
                    buffer.pop(0)
                    stored += 1
                elif 400 <= status < 500 and status not in (401, 429):
                    log.warning("phone %d: fix refused (%d), dropped", index, status)
                    buffer.pop(0)
                else:  # unreachable, busy or failing: kept, sent again with the next fix
                    break
        await asyncio.sleep(quiet_s / speed if speed > 0 else 0)
    log.info("phone %d (%s) done: %d fixes stored", index, username, stored)
    return stored


async def main_async(args) -> None:
    shared = load_settings().shared_tracks_dir
    real = track_files(shared)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="simulate-"))
    workdir.mkdir(parents=True, exist_ok=True)
    tokens = device_tokens(args.devices + args.phones, args.seed) if args.devices + args.phones else []
    devices, phones = tokens[:args.devices], tokens[args.devices:]
    quiet_s = load_settings().device_idle_complete_s + 60
    totals = await asyncio.gather(
        *[simulate_device(i, args.server, user, token, args.speed, args.drop_every, workdir, real, args.seed,
                          args.rounds) for i, (user, token) in enumerate(devices)],
        *[simulate_phone(i, args.http.rstrip("/"), user, token, args.speed, real, args.seed, args.rounds, quiet_s)
          for i, (user, token) in enumerate(phones)])
    print(f"simulated {args.devices} devices and {args.phones} phones, {sum(totals)} points recorded and synced")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m realtime.simulate", description="simulated live devices")
    parser.add_argument("--server", default="ws://127.0.0.1:8765")
    parser.add_argument("--devices", type=int, default=3)
    parser.add_argument("--phones", type=int, default=0, help="phones sending to the HTTP service (--http)")
    parser.add_argument("--http", default="http://127.0.0.1:8766", help="the HTTP service, for --phones")
    parser.add_argument("--speed", type=float, default=1.0, help="times real time; 0 = as fast as possible")
    parser.add_argument("--rounds", type=int, default=1, help="activities per device, one after another")
    parser.add_argument("--drop-every", type=float, help="drop the network every this many seconds")
    parser.add_argument("--workdir", help="where the devices keep their buffers")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
