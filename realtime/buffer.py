"""The device's local buffer: one SQLite file (WAL, synchronous=FULL) holding its activities,
the commands and points the server has not acknowledged yet, and what the server refused
for good.

Every point is written here before anything else, and leaves only once acknowledged, so a
crash, a lost connection or days offline lose nothing.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

from core.activities.cues import CuePrefs
from core.activities.lifecycle import OPEN_STATUSES
from core.activities.live import LiveStats

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
REFUSED_SERVER_ID = 0  # an activity whose create was refused: nothing of it is sent again
_OPEN = ", ".join(f"'{status}'" for status in OPEN_STATUSES)


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

    # Recording.

    def new_activity(self, sport: str, title: str | None = None, source: str | None = None,
                     prefs: CuePrefs | None = None) -> int:
        live = LiveStats(sport, prefs or CuePrefs())
        cur = self.db.execute(
            "INSERT INTO activities (client_ref, sport, title, source, live) VALUES (?, ?, ?, ?, ?)",
            (uuid.uuid4().hex, sport, title, source, json.dumps(live.to_state())))
        return int(cur.lastrowid)

    def latest_open(self, source: str | None = None) -> int | None:
        row = self.db.execute(
            f"SELECT local_id FROM activities WHERE status IN ({_OPEN})"
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

    # The outbox.

    def unsynced_activities(self) -> list[int]:
        rows = self.db.execute(
            "SELECT local_id FROM activities a WHERE server_id IS NULL"
            " OR EXISTS (SELECT 1 FROM commands c WHERE c.local_id = a.local_id)"
            " OR EXISTS (SELECT 1 FROM points p WHERE p.local_id = a.local_id) ORDER BY local_id").fetchall()
        return [r[0] for r in rows]

    def set_server_id(self, local_id: int, server_id: int) -> None:
        self.db.execute("UPDATE activities SET server_id = ? WHERE local_id = ?", (server_id, local_id))

    def pending_points(self, local_id: int, limit: int) -> list[dict]:
        rows = self.db.execute("SELECT seq, t, lat, lon, ele, acc, hr, cad FROM points WHERE local_id = ?"
                               " ORDER BY seq LIMIT ?", (local_id, limit)).fetchall()
        keys = ("seq", "t", "lat", "lon", "ele", "acc", "hr", "cad")
        return [{k: v for k, v in zip(keys, row) if v is not None} for row in rows]

    def forget_points(self, local_id: int, seqs: list[int]) -> None:
        self.db.executemany("DELETE FROM points WHERE local_id = ? AND seq = ?", [(local_id, s) for s in seqs])

    def count_points(self, local_id: int | None = None) -> int:
        if local_id is None:
            return self.db.execute("SELECT count(*) FROM points").fetchone()[0]
        return self.db.execute("SELECT count(*) FROM points WHERE local_id = ?", (local_id,)).fetchone()[0]

    def commands(self, local_id: int) -> list[tuple[int, str, float, int]]:
        return self.db.execute("SELECT id, command, at, attempts FROM commands WHERE local_id = ? ORDER BY id",
                               (local_id,)).fetchall()

    def count_attempt(self, command_id: int) -> None:
        self.db.execute("UPDATE commands SET attempts = attempts + 1 WHERE id = ?", (command_id,))

    def drop_command(self, command_id: int) -> None:
        self.db.execute("DELETE FROM commands WHERE id = ?", (command_id,))

    # What the server refused for good.

    def set_aside(self, local_id: int, kind: str, payload, reply: dict) -> None:
        """Keep something the server refused for good, with its reason, out of the outbox."""
        self.db.execute("INSERT INTO rejected (local_id, kind, payload, code, reason, at) VALUES (?, ?, ?, ?, ?, ?)",
                        (local_id, kind, json.dumps(payload), reply.get("code"), reply.get("message"), time.time()))

    def set_aside_points(self, local_id: int, batch: list[dict], reply: dict) -> None:
        """Move refused points out of the outbox, in one transaction."""
        with self.db:
            self.db.execute("BEGIN")
            self.set_aside(local_id, "points", batch, reply)
            self.forget_points(local_id, [p["seq"] for p in batch])

    def set_aside_activity(self, local_id: int, act: dict, reply: dict) -> None:
        """An activity whose create was refused: it, its points and its commands leave the outbox."""
        db = self.db
        with db:
            db.execute("BEGIN")
            self.set_aside(local_id, "activity", {k: act[k] for k in ("sport", "title", "client_ref")}, reply)
            self.set_aside(local_id, "points", self.pending_points(local_id, 10**9), reply)
            db.execute("DELETE FROM points WHERE local_id = ?", (local_id,))
            db.execute("DELETE FROM commands WHERE local_id = ?", (local_id,))
            db.execute("UPDATE activities SET server_id = ? WHERE local_id = ?", (REFUSED_SERVER_ID, local_id))

    def rejected(self) -> list[dict]:
        """What the server refused for good: kind, payload, code and reason."""
        rows = self.db.execute("SELECT local_id, kind, payload, code, reason FROM rejected ORDER BY id").fetchall()
        return [{"local_id": r[0], "kind": r[1], "payload": json.loads(r[2]), "code": r[3], "reason": r[4]}
                for r in rows]

    def refused_transitions(self, local_id: int) -> list[tuple[int, dict]]:
        """The activity's commands set aside as invalid transitions: (rejected id, command)."""
        rows = self.db.execute(
            "SELECT id, payload FROM rejected WHERE local_id = ? AND kind = 'command' AND code = 'invalid_transition'",
            (local_id,)).fetchall()
        return [(rid, json.loads(payload)) for rid, payload in rows]

    def continue_as_new(self, local_id: int, title: str, outbox: list[tuple[str, float]],
                        superseded: list[int]) -> None:
        """Make what the activity still holds a new activity (a new client_ref, no server id)
        with the commands ``outbox``, dropping its queued commands and the rejected entries
        ``superseded``, in one transaction."""
        db = self.db
        with db:
            db.execute("BEGIN")
            db.execute("DELETE FROM commands WHERE local_id = ?", (local_id,))
            db.executemany("DELETE FROM rejected WHERE id = ?", [(rid,) for rid in superseded])
            db.executemany("INSERT INTO commands (local_id, command, at) VALUES (?, ?, ?)",
                           [(local_id, c, at) for c, at in outbox])
            db.execute("UPDATE activities SET server_id = NULL, client_ref = ?, title = ? WHERE local_id = ?",
                       (uuid.uuid4().hex, title, local_id))
