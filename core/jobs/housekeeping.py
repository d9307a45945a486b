"""Housekeeping, every ten minutes: close activities their devices abandoned a day ago
(completed from their points, or discarded when they have none), delete expired web sessions
and old failed sign-ins, each in short transactions."""

from __future__ import annotations

from core.accounts.sessions import purge_expired_web_sessions
from core.accounts.signin import purge_old_login_attempts
from core.accounts.users import PURGE_BATCH_ROWS
from core.activities.open import close_abandoned
from core.storage.engine import write_transaction

HOUSEKEEPING_EVERY_S = 600.0


def housekeeping(Session) -> dict:
    """Close abandoned activities; delete expired web sessions and old failed sign-ins."""
    done = {}
    closed = close_abandoned(Session)
    if any(closed.values()):
        done["abandoned"] = closed
    sessions = _purge(Session, "purge_sessions", purge_expired_web_sessions)
    attempts = _purge(Session, "purge_sign_ins", purge_old_login_attempts)
    if sessions or attempts:
        done["purged"] = {"web_sessions": sessions, "failed_sign_ins": attempts}
    return done


def _purge(Session, job: str, purge) -> int:
    """Run a purge one batch per short transaction until a batch comes back short."""
    total = 0
    while True:
        with write_transaction(Session, job) as s:
            n = purge(s)
        total += n
        if n < PURGE_BATCH_ROWS:
            return total
