"""The ingest server's rounds: silent connections closed, the connections of revoked device
tokens closed, and the SQLite WAL checkpointed off the commit path."""

from __future__ import annotations

import asyncio
import logging
import time

from websockets.asyncio.server import Server, ServerConnection

from realtime.store import CHECKPOINT_EVERY_S

log = logging.getLogger("realtime")

CLOSE_IDLE = 4000
CLOSE_REVOKED = 4001
TOKEN_CHECK_EVERY_S = 2.0  # how soon a revoked device token's connections are closed


class Watchers:
    """Background rounds of an ingest server (a base of ``IngestServer``, which supplies
    ``idle_timeout_s``, ``last_seen``, ``db``, ``store`` and ``evict_idle_activities``)."""

    async def idle_sweeper(self) -> None:
        """Close connections that have sent nothing for ``idle_timeout_s`` (code 4000), and
        forget activities nobody has touched for a while."""
        while True:
            await asyncio.sleep(min(self.idle_timeout_s / 4, 30.0))
            now = time.monotonic()
            cutoff = now - self.idle_timeout_s
            for ws, seen in list(self.last_seen.items()):
                if seen < cutoff:
                    self.last_seen.pop(ws, None)
                    asyncio.create_task(ws.close(CLOSE_IDLE, "idle timeout"))
            self.evict_idle_activities(now)

    async def token_watch(self, server: Server, every_s: float = TOKEN_CHECK_EVERY_S) -> None:
        """Close the connections of device tokens revoked (or deleted with their athlete)
        since they connected, within ``every_s``: one indexed query for all of them."""
        while True:
            await asyncio.sleep(every_s)
            by_token: dict[int, list[ServerConnection]] = {}
            for ws in list(server.connections):
                identity = getattr(ws, "identity", None)
                if identity is not None and identity.token_id:
                    by_token.setdefault(identity.token_id, []).append(ws)
            if not by_token:
                continue
            try:
                revoked = await self.db(self.store.revoked_tokens, list(by_token))
            except Exception:  # noqa: BLE001 - checked again next round
                log.warning("could not check device tokens", exc_info=True)
                continue
            for token_id in revoked:
                for ws in by_token[token_id]:
                    log.info("token revoked: closing", extra={"user": ws.identity.username})
                    asyncio.create_task(ws.close(CLOSE_REVOKED, "device token revoked"))

    async def checkpointer(self, every_s: float = CHECKPOINT_EVERY_S) -> None:
        """Checkpoint the SQLite WAL now and then on the database thread, not in a commit."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.db(self.store.checkpoint)
            except Exception:  # noqa: BLE001 - the next round tries again; commits are unaffected
                log.warning("WAL checkpoint failed", exc_info=True)
