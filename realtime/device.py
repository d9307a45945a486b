"""The device client: record locally first, sync when connected, never lose or double a point.

Every point goes into the local buffer (realtime/buffer.py) before anything else; a point
leaves it only after the server has acknowledged it. Commands (create, status changes)
wait in the same file's outbox. ``DeviceClient.run`` connects with exponential backoff
and, after any outage (seconds or days, process restart included), sends everything it
holds in order: creates, status changes, points, and completion last. While offline the
client computes the same live stats and cues itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from core.activities.lifecycle import OPEN_STATUSES, TARGET, default_title
from core.activities.live import LiveStats
from realtime.buffer import LocalBuffer
from realtime.protocol import MAX_POINTS_PER_BATCH

log = logging.getLogger("realtime.client")

SYNC_BATCH_POINTS = 500
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0  # a device that lost the server is back within seconds of its return
REPLY_TIMEOUT_S = 30.0
# The commands that close an activity: sent only once none of its points is pending.
FINAL_COMMANDS = tuple(command for command, status in TARGET.items() if status not in OPEN_STATUSES)

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


class ServerRefused(RuntimeError):
    """The server refused this device (its token): syncing cannot go on."""


class RetryLater(RuntimeError):
    """The server could not take a message now; reconnect after a backoff and resend."""


def refused(reply: dict) -> bool:
    """Whether an error answer says the message can never be accepted (not "try later")."""
    return reply.get("type") == "error" and reply.get("code") in REFUSED_CODES


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
        status = TARGET[command]
        live.follow_status(status, at)
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
                self.buffer.set_server_id(local_id, server_id)
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
        refused_here = self.buffer.refused_transitions(local_id)
        ending = {c["command"]: c["at"] for _, c in refused_here}
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
        title = act["title"] or default_title(act["sport"])
        self.buffer.continue_as_new(local_id, f"{title} (continued)", outbox, [rid for rid, _ in refused_here])
        return True

    def _set_aside_points(self, local_id: int, batch: list[dict], reply: dict) -> None:
        log.warning("server refused %d points of activity %d for good (%s: %s); kept aside",
                    len(batch), local_id, reply.get("code"), reply.get("message"))
        self.buffer.set_aside_points(local_id, batch, reply)

    def _set_aside_activity(self, local_id: int, act: dict, reply: dict) -> None:
        log.warning("server refused activity %d for good (%s: %s); kept aside",
                    local_id, reply.get("code"), reply.get("message"))
        self.buffer.set_aside_activity(local_id, act, reply)

    async def _send_commands(self, ws, local_id: int, server_id: int) -> None:
        """Send queued status changes in order; completion waits until no point is pending."""
        for command_id, command, at, attempts in self.buffer.commands(local_id):
            if command in FINAL_COMMANDS and self.buffer.count_points(local_id):
                break
            self.buffer.count_attempt(command_id)
            reply = await self.ask_patiently(ws, {"type": "status", "activity_id": server_id, "command": command,
                                                  "at": at})
            applied = reply["type"] == "status"
            self.progress += 1
            # A command resent after a lost answer may already be behind the server's state.
            if not applied and not (reply.get("code") == "invalid_transition" and attempts > 0):
                self.buffer.set_aside(local_id, "command", {"command": command, "at": at}, reply)
                log.warning("server refused %s of activity %d (%s: %s); kept aside",
                            command, local_id, reply.get("code"), reply.get("message"))
            self.buffer.drop_command(command_id)
