"""A move between the storage tiers started from the dashboard (``tiers run`` on the command
line): ``core.storage.tiers.run`` in a thread of the dashboard's process, its progress kept
here for the page to show. One at a time per process; the worker's hourly move
(``core.jobs.tiers``) may run beside it, as ``tiers run`` may: each activity moves in
crash-safe steps that another mover finds done."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from core.storage.tiers import run

log = logging.getLogger(__name__)


@dataclass
class Move:
    by: str  # the moderator who started it
    older_than_days: float | None
    started_at: datetime
    done: int = 0
    total: int = 0
    result: dict | None = None  # what ``run`` counted, once finished
    error: str | None = None
    finished_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.finished_at is None


_lock = threading.Lock()
_last: list[Move] = []


def last() -> Move | None:
    """The move running now, or the last one finished (None before any)."""
    with _lock:
        return _last[0] if _last else None


def start(Session, settings, by: str, older_than_days: float | None) -> Move | None:
    """Start a move, or None when one is running already."""
    with _lock:
        if _last and _last[0].running:
            return None
        move = Move(by, older_than_days, datetime.now(UTC))
        _last[:] = [move]

    def progress(done: int, total: int) -> None:
        move.done, move.total = done, total

    def work() -> None:
        try:
            move.result = run(Session, settings, older_than_days=older_than_days, progress=progress)
        except Exception as exc:  # shown on the page; the next move starts afresh
            log.exception("tier move started by %s failed", by)
            move.error = f"{type(exc).__name__}: {exc}"
        finally:
            move.finished_at = datetime.now(UTC)

    threading.Thread(target=work, name="tier-move", daemon=True).start()
    return move
