"""The device client: record locally first, sync when connected, never lose or double a point.

Every point goes into a local SQLite file (WAL, synchronous=FULL) before anything else;
a point leaves that file only after the server has acknowledged it. Commands (create,
status changes) wait in the same file's outbox. ``DeviceClient.run`` connects with
exponential backoff and, after any outage (seconds or days, process restart included),
sends everything it holds in order: creates, status changes, points, and completion last.
While offline the client computes the same live stats and cues itself.

    python -m realtime.client replay FILE --server ws://127.0.0.1:8765 --token TOKEN [--speed 10]
    python -m realtime.client sync --server ... --token ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sqlite3
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from core.activities.cues import CuePrefs
from core.activities.live import LiveStats
from realtime.protocol import MAX_POINTS_PER_BATCH

log = logging.getLogger("realtime.client")

GPS_INTERVAL_S = {"run": 5.0, "ride": 3.0}
SYNC_BATCH_POINTS = 500
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0  # a device that lost the server is back within seconds of its return
REPLY_TIMEOUT_S = 30.0
FINAL_COMMANDS = ("complete", "discard")

SCHEMA = """
CREATE TABLE IF NOT EXISTS activities (
    local_id INTEGER PRIMARY KEY, client_ref TEXT UNIQUE NOT NULL, server_id INTEGER,
    sport TEXT NOT NULL, title TEXT, source TEXT, next_seq INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'created', live TEXT);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT, local_id INTEGER NOT NULL, command TEXT NOT NULL,
    at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS points (
    local_id INTEGER NOT NULL, seq INTEGER NOT NULL, t REAL NOT NULL, lat REAL, lon REAL,
    ele REAL, acc REAL, hr REAL, cad REAL, PRIMARY KEY (local_id, seq));
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT, local_id INTEGER NOT NULL, kind TEXT NOT NULL,
    payload TEXT NOT NULL, code TEXT, reason TEXT, at REAL NOT NULL);
"""
# Answers that say "not now": the client reconnects after a backoff and sends the same
# again. Any code it does not know is treated the same way, so a newer server never makes
# an older device drop data.
RETRY_CODES = frozenset({"internal", "rate_limited"})
# Answers that say the message itself can never be accepted: what it carried is set aside
# in the buffer's ``rejected`` table (kept, with the reason) so the rest can sync.
REFUSED_CODES = frozenset({"bad_json", "bad_message", "unknown_type", "unsupported_version", "missing_field",
                           "wrong_type", "invalid_value", "invalid_point", "batch_too_large",
                           "message_too_large", "not_found", "invalid_transition", "activity_closed",
                           "unknown_command", "invalid_time"})
REFUSED_SERVER_ID = 0  # an activity whose create was refused: nothing of it is sent again


class ServerRefused(RuntimeError):
    """The server refused this device (its token): syncing cannot go on."""


class RetryLater(RuntimeError):
    """The server could not take a message now; reconnect after a backoff and resend."""


def refused(reply: dict) -> bool:
    """Whether an error answer says the message can never be accepted (not "try later")."""
    return reply.get("type") == "error" and reply.get("code") in REFUSED_CODES


class LocalBuffer:
    """The device's SQLite file: activities, pending commands and unacknowledged points."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def new_activity(self, sport: str, title: str | None = None, source: str | None = None,
                     prefs: CuePrefs | None = None) -> int:
        live = LiveStats(sport, prefs or CuePrefs())
        cur = self.db.execute(
            "INSERT INTO activities (client_ref, sport, title, source, live) VALUES (?, ?, ?, ?, ?)",
            (uuid.uuid4().hex, sport, title, source, json.dumps(live.to_state())))
        return int(cur.lastrowid)

    def latest_open(self, source: str | None = None) -> int | None:
        row = self.db.execute(
            "SELECT local_id FROM activities WHERE status NOT IN ('completed', 'discarded')"
            " AND (? IS NULL OR source = ?) ORDER BY local_id DESC LIMIT 1", (source, source)).fetchone()
        return row[0] if row else None

    def activity(self, local_id: int) -> dict:
        row = self.db.execute("SELECT local_id, client_ref, server_id, sport, title, next_seq, status, live"
                              " FROM activities WHERE local_id = ?", (local_id,)).fetchone()
        keys = ("local_id", "client_ref", "server_id", "sport", "title", "next_seq", "status", "live")
        return dict(zip(keys, row))

    def live(self, local_id: int) -> LiveStats:
        return LiveStats.from_state(json.loads(self.activity(local_id)["live"]))

    def record_command(self, local_id: int, command: str, at: float, status: str, live: LiveStats) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("INSERT INTO commands (local_id, command, at) VALUES (?, ?, ?)", (local_id, command, at))
            self.db.execute("UPDATE activities SET status = ?, live = ? WHERE local_id = ?",
                            (status, json.dumps(live.to_state()), local_id))

    def record_point(self, local_id: int, point: dict, live: LiveStats) -> int:
        """Store one point (durably) and return its sequence number."""
        with self.db:
            self.db.execute("BEGIN")
            seq = self.db.execute("SELECT next_seq FROM activities WHERE local_id = ?", (local_id,)).fetchone()[0]
            self.db.execute(
                "INSERT INTO points (local_id, seq, t, lat, lon, ele, acc, hr, cad) VALUES (?,?,?,?,?,?,?,?,?)",
                (local_id, seq, point["t"], point.get("lat"), point.get("lon"), point.get("ele"), point.get("acc"),
                 point.get("hr"), point.get("cad")))
            self.db.execute("UPDATE activities SET next_seq = ?, live = ? WHERE local_id = ?",
                            (seq + 1, json.dumps(live.to_state()), local_id))
        return seq

    def pending_points(self, local_id: int, limit: int) -> list[dict]:
        rows = self.db.execute("SELECT seq, t, lat, lon, ele, acc, hr, cad FROM points WHERE local_id = ?"
                               " ORDER BY seq LIMIT ?", (local_id, limit)).fetchall()
        keys = ("seq", "t", "lat", "lon", "ele", "acc", "hr", "cad")
        return [{k: v for k, v in zip(keys, row) if v is not None} for row in rows]

    def set_aside(self, local_id: int, kind: str, payload, reply: dict) -> None:
        """Keep something the server refused for good, with its reason, out of the outbox."""
        self.db.execute("INSERT INTO rejected (local_id, kind, payload, code, reason, at) VALUES (?, ?, ?, ?, ?, ?)",
                        (local_id, kind, json.dumps(payload), reply.get("code"), reply.get("message"), time.time()))

    def rejected(self) -> list[dict]:
        """What the server refused for good: kind, payload, code and reason."""
        rows = self.db.execute("SELECT local_id, kind, payload, code, reason FROM rejected ORDER BY id").fetchall()
        return [{"local_id": r[0], "kind": r[1], "payload": json.loads(r[2]), "code": r[3], "reason": r[4]}
                for r in rows]

    def forget_points(self, local_id: int, seqs: list[int]) -> None:
        self.db.executemany("DELETE FROM points WHERE local_id = ? AND seq = ?", [(local_id, s) for s in seqs])

    def count_points(self, local_id: int | None = None) -> int:
        if local_id is None:
            return self.db.execute("SELECT count(*) FROM points").fetchone()[0]
        return self.db.execute("SELECT count(*) FROM points WHERE local_id = ?", (local_id,)).fetchone()[0]

    def commands(self, local_id: int) -> list[tuple[int, str, float, int]]:
        return self.db.execute("SELECT id, command, at, attempts FROM commands WHERE local_id = ? ORDER BY id",
                               (local_id,)).fetchall()

    def unsynced_activities(self) -> list[int]:
        rows = self.db.execute(
            "SELECT local_id FROM activities a WHERE server_id IS NULL"
            " OR EXISTS (SELECT 1 FROM commands c WHERE c.local_id = a.local_id)"
            " OR EXISTS (SELECT 1 FROM points p WHERE p.local_id = a.local_id) ORDER BY local_id").fetchall()
        return [r[0] for r in rows]


class DeviceClient:
    """Records activities into the local buffer and syncs them to the ingest server."""

    def __init__(self, buffer: LocalBuffer, server_url: str, token: str, batch_points: int = SYNC_BATCH_POINTS):
        self.buffer = buffer
        self.server_url = server_url
        self.token = token
        self.batch_points = min(batch_points, MAX_POINTS_PER_BATCH)
        self.connected = asyncio.Event()
        self.wakeup = asyncio.Event()
        self.spoken: list[str] = []
        self._lives: dict[int, LiveStats] = {}
        self._request = 0
        self.retries = 0  # reconnections after an error, a close or a network cut
        self.progress = 0  # answers that moved the sync on (acks, creates, applied commands)

    # Recording: local first, always works offline.

    def start_activity(self, sport: str, title: str | None = None, source: str | None = None) -> int:
        local_id = self.buffer.new_activity(sport, title, source)
        self.command(local_id, "start")
        return local_id

    def _live(self, local_id: int) -> LiveStats:
        if local_id not in self._lives:
            self._lives[local_id] = self.buffer.live(local_id)
        return self._lives[local_id]

    def command(self, local_id: int, command: str, at: float | None = None) -> None:
        live = self._live(local_id)
        at = time.time() if at is None else at
        if command in ("pause", "stop"):
            live.pause(at)
        elif command in ("resume", "start"):
            live.resume(at)
        status = {"start": "active", "pause": "paused", "resume": "active", "stop": "stopped",
                  "complete": "completed", "discard": "discarded"}[command]
        self.buffer.record_command(local_id, command, at, status, live)
        self.wakeup.set()

    def record_point(self, local_id: int, point: dict) -> list[str]:
        """Store a point; return the cues due now (spoken locally while offline)."""
        live = self._live(local_id)
        live.add(point["t"], point.get("lat"), point.get("lon"))
        self.buffer.record_point(local_id, point, live)
        cues = live.due_cues()
        if not self.connected.is_set():
            self.spoken.extend(cues)
        self.wakeup.set()
        return cues

    # Syncing.

    async def drop_connection(self) -> None:
        """Close the current connection as a network drop would (the run loop reconnects)."""
        ws = getattr(self, "_ws", None)
        if ws is not None:
            ws.transport.abort()

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected (with backoff) and keep the server up to date until ``stop``."""
        delay = BACKOFF_START_S
        while not stop.is_set():
            progress = self.progress
            try:
                async with connect(self.server_url, additional_headers={"Authorization": f"Bearer {self.token}"},
                                   open_timeout=10, close_timeout=2) as ws:
                    hello = json.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT_S))
                    if hello.get("type") != "welcome":
                        raise ServerRefused(f"unexpected greeting {hello}")
                    self.connected.set()
                    self._ws = ws
                    while not stop.is_set():
                        await self.sync(ws)
                        self.wakeup.clear()
                        if self.buffer.unsynced_activities():
                            continue
                        wait = asyncio.ensure_future(self.wakeup.wait())
                        halt = asyncio.ensure_future(stop.wait())
                        await asyncio.wait({wait, halt}, return_when=asyncio.FIRST_COMPLETED)
                        wait.cancel()
                        halt.cancel()
            except InvalidStatus as exc:
                if exc.response.status_code == 401:
                    raise ServerRefused("the server refused this device token") from None
                log.info("connect refused (%s); retrying in %.1f s", exc.response.status_code, delay)
            except (OSError, ConnectionClosed, TimeoutError, InvalidHandshake, RetryLater) as exc:
                self.retries += 1
                log.info("offline (%s: %s); retrying in %.1f s", type(exc).__name__, exc, delay)
            except Exception:  # noqa: BLE001 - whatever happened, the buffer still holds the data: retry
                self.retries += 1
                log.exception("sync failed; retrying in %.1f s", delay)
            finally:
                self.connected.clear()
                self._ws = None
                # The backoff starts afresh only after the server took something: a server
                # that greets but keeps failing is not asked again twice a second.
                if self.progress > progress:
                    delay = BACKOFF_START_S
            if stop.is_set():
                break
            try:
                await asyncio.wait_for(stop.wait(), delay * random.uniform(0.8, 1.2))
            except TimeoutError:
                pass
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def ask(self, ws, message: dict) -> dict:
        self._request += 1
        message["id"] = self._request
        await ws.send(json.dumps(message))
        while True:
            reply = json.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT_S))
            if reply.get("type") in ("cue", "suggest_pause"):
                self.spoken.append(reply["text"])
                continue
            # One request is in flight, so an error without an id (rate limiting) is its answer.
            if reply.get("id") == self._request or (reply.get("type") == "error" and "id" not in reply):
                return reply

    async def ask_patiently(self, ws, message: dict) -> dict:
        """Ask, waiting and asking again while the server says we are too fast. An answer
        that is neither a success nor a final refusal raises RetryLater (the run loop
        reconnects after a backoff and sends the same again)."""
        delay = 0.2
        while True:
            reply = await self.ask(ws, dict(message))
            if reply.get("code") != "rate_limited":
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        if reply.get("type") == "error" and not refused(reply):
            raise RetryLater(f"{reply.get('code')}: {reply.get('message')}")
        return reply

    async def sync(self, ws) -> None:
        """Send everything the buffer holds, in order, removing each piece once acknowledged
        (or, when the server refuses it for good, once set aside with the reason)."""
        for local_id in self.buffer.unsynced_activities():
            act = self.buffer.activity(local_id)
            server_id = act["server_id"]
            if server_id is None:
                reply = await self.ask_patiently(ws, {"type": "create", "sport": act["sport"],
                                                      "title": act["title"], "client_ref": act["client_ref"]})
                if reply["type"] != "created":
                    self._set_aside_activity(local_id, act, reply)
                    continue
                server_id = reply["activity_id"]
                self.progress += 1
                self.buffer.db.execute("UPDATE activities SET server_id = ? WHERE local_id = ?", (server_id, local_id))
            await self._send_commands(ws, local_id, server_id)
            moved = False
            while True:
                batch = self.buffer.pending_points(local_id, self.batch_points)
                if not batch:
                    break
                reply = await self.ask_patiently(ws, {"type": "points", "activity_id": server_id, "points": batch})
                if reply["type"] == "ack":
                    self.progress += 1
                    self.buffer.forget_points(local_id, [p["seq"] for p in batch])
                elif reply.get("code") == "activity_closed" and self._continue_elsewhere(local_id, batch, reply):
                    moved = True  # the rest goes to a new activity at the next pass
                    break
                elif len(batch) > 1 and reply.get("code") in ("invalid_point", "batch_too_large",
                                                              "message_too_large"):
                    await self._send_one_by_one(ws, local_id, server_id, batch)
                else:
                    self._set_aside_points(local_id, batch, reply)
            if not moved:
                await self._send_commands(ws, local_id, server_id)

    async def _send_one_by_one(self, ws, local_id: int, server_id: int, batch: list[dict]) -> None:
        """A batch refused for one bad point: send its points singly, setting aside only the bad."""
        for p in batch:
            reply = await self.ask_patiently(ws, {"type": "points", "activity_id": server_id, "points": [p]})
            if reply["type"] == "ack":
                self.progress += 1
                self.buffer.forget_points(local_id, [p["seq"]])
            else:
                self._set_aside_points(local_id, [p], reply)

    def _continue_elsewhere(self, local_id: int, batch: list[dict], reply: dict) -> bool:
        """The server closed this activity while the device still held points for it (it was
        offline for longer than the server waits, and the server completed what it had):
        the rest is recorded as a new activity, "(continued)", with its own start and the
        device's own ending, so nothing is lost. Returns False when there is nothing to move."""
        act = self.buffer.activity(local_id)
        pending = self.buffer.pending_points(local_id, 10**9)
        if not pending:
            return False
        log.warning("server closed activity %d (%s); the remaining %d points continue in a new activity",
                    local_id, reply.get("message"), len(pending))
        # Its ending: the commands still queued, and those the closed activity refused just
        # before (they are superseded by the new activity's own, so no longer set aside).
        refused_here = self.buffer.db.execute(
            "SELECT id, payload FROM rejected WHERE local_id = ? AND kind = 'command' AND code = 'invalid_transition'",
            (local_id,)).fetchall()
        ending = {c["command"]: c["at"] for c in (json.loads(p) for _, p in refused_here)}
        ending.update({c: at for _, c, at, _ in self.buffer.commands(local_id)})
        last_t = pending[-1]["t"]
        outbox = [("start", pending[0]["t"] - 1)]
        if act["status"] == "paused":
            outbox.append(("pause", ending.get("pause", last_t + 1)))
        if act["status"] in ("stopped", "completed"):
            outbox.append(("stop", ending.get("stop", last_t + 1)))
        if act["status"] in ("completed", "discarded"):
            final = "complete" if act["status"] == "completed" else "discard"
            outbox.append((final, ending.get(final, last_t + 2)))
        title = act["title"] or ("Run" if act["sport"] == "run" else "Ride")
        db = self.buffer.db
        with db:
            db.execute("BEGIN")
            db.execute("DELETE FROM commands WHERE local_id = ?", (local_id,))
            db.executemany("DELETE FROM rejected WHERE id = ?", [(rid,) for rid, _ in refused_here])
            db.executemany("INSERT INTO commands (local_id, command, at) VALUES (?, ?, ?)",
                           [(local_id, c, at) for c, at in outbox])
            db.execute("UPDATE activities SET server_id = NULL, client_ref = ?, title = ? WHERE local_id = ?",
                       (uuid.uuid4().hex, f"{title} (continued)", local_id))
        return True

    def _set_aside_points(self, local_id: int, batch: list[dict], reply: dict) -> None:
        log.warning("server refused %d points of activity %d for good (%s: %s); kept aside",
                    len(batch), local_id, reply.get("code"), reply.get("message"))
        with self.buffer.db:
            self.buffer.db.execute("BEGIN")
            self.buffer.set_aside(local_id, "points", batch, reply)
            self.buffer.forget_points(local_id, [p["seq"] for p in batch])

    def _set_aside_activity(self, local_id: int, act: dict, reply: dict) -> None:
        log.warning("server refused activity %d for good (%s: %s); kept aside",
                    local_id, reply.get("code"), reply.get("message"))
        db = self.buffer.db
        with db:
            db.execute("BEGIN")
            self.buffer.set_aside(local_id, "activity", {k: act[k] for k in ("sport", "title", "client_ref")}, reply)
            self.buffer.set_aside(local_id, "points", self.buffer.pending_points(local_id, 10**9), reply)
            db.execute("DELETE FROM points WHERE local_id = ?", (local_id,))
            db.execute("DELETE FROM commands WHERE local_id = ?", (local_id,))
            db.execute("UPDATE activities SET server_id = ? WHERE local_id = ?", (REFUSED_SERVER_ID, local_id))

    async def _send_commands(self, ws, local_id: int, server_id: int) -> None:
        """Send queued status changes in order; completion waits until no point is pending."""
        for command_id, command, at, attempts in self.buffer.commands(local_id):
            if command in FINAL_COMMANDS and self.buffer.count_points(local_id):
                break
            self.buffer.db.execute("UPDATE commands SET attempts = attempts + 1 WHERE id = ?", (command_id,))
            reply = await self.ask_patiently(ws, {"type": "status", "activity_id": server_id, "command": command,
                                                  "at": at})
            applied = reply["type"] == "status"
            self.progress += 1
            # A command resent after a lost answer may already be behind the server's state.
            if not applied and not (reply.get("code") == "invalid_transition" and attempts > 0):
                self.buffer.set_aside(local_id, "command", {"command": command, "at": at}, reply)
                log.warning("server refused %s of activity %d (%s: %s); kept aside",
                            command, local_id, reply.get("code"), reply.get("message"))
            self.buffer.db.execute("DELETE FROM commands WHERE id = ?", (command_id,))


def replay_points(path: str, sport: str | None = None) -> tuple[str, list[dict]]:
    """The points of a recorded file resampled like a phone logs them (5 s runs, 3 s rides)."""
    from core.tracks.formats import load_track
    track = load_track(path)
    sport = sport or (track.sport if track.sport in GPS_INTERVAL_S else "run")
    return sport, device_points(track, sport)


def device_points(track, sport: str) -> list[dict]:
    """A track's cleaned fixes, one every GPS_INTERVAL_S of the sport, as point dicts."""
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
            p.add_argument("--sport", choices=("run", "ride"))
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
