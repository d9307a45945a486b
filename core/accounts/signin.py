"""Signing in with a password, throttled per account and per client."""

from __future__ import annotations

import math
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.tables import LoginAttempt, User, utc_now
from core.accounts.users import (
    PURGE_BATCH_ROWS,
    AccountError,
    normal_username,
    password_matches,
    user_by_name,
)
from core.storage.engine import write_transaction
from core.text import clean

SIGN_IN_FAILURE_LIMIT = 5
SIGN_IN_WINDOW = timedelta(minutes=15)
MAX_ATTEMPT_KEY_CHARS = 200  # login_attempts.key


class SignInThrottled(AccountError):
    """Too many recent failed sign-ins for this account or client; the message says how long to wait."""

    def __init__(self, wait: timedelta) -> None:
        minutes = max(1, math.ceil(wait.total_seconds() / 60))
        super().__init__(f"Too many failed sign-ins: try again in {minutes} minute{'' if minutes == 1 else 's'}.")
        self.wait = wait


def _attempt_keys(username: str, client: str | None) -> list[str]:
    keys = [f"user:{normal_username(username)}"]
    if client:
        keys.append(f"client:{clean(client)}")
    return [k[:MAX_ATTEMPT_KEY_CHARS] for k in keys]


def check_sign_in_allowed(s: Session, username: str, client: str | None, now: datetime | None = None,
                          exclude: Collection[int] = ()) -> None:
    """Raise SignInThrottled if the account or the client has failed too often lately.

    Attempts still being checked count as failures; ``exclude`` names the rows of the
    attempt asking, which is not counted against itself."""
    now = utc_now(now)
    waits = []
    for key in _attempt_keys(username, client):
        # The newest attempts through the (key, at) index: once there are enough of them,
        # sign-in opens again when the oldest of those leaves the window (a parallel
        # attempt may be stamped a moment after ``now``: the wait is never over the window).
        q = select(LoginAttempt.at).where(LoginAttempt.key == key, LoginAttempt.at > now - SIGN_IN_WINDOW)
        if exclude:
            q = q.where(LoginAttempt.id.not_in(exclude))
        recent = s.scalars(q.order_by(LoginAttempt.at.desc()).limit(SIGN_IN_FAILURE_LIMIT)).all()
        if len(recent) >= SIGN_IN_FAILURE_LIMIT:
            waits.append(min(recent[-1], now) + SIGN_IN_WINDOW - now)
    if waits:
        raise SignInThrottled(max(waits))


def record_failed_sign_in(s: Session, username: str, client: str | None, now: datetime | None = None) -> list[int]:
    """Count a sign-in attempt, a failure until it succeeds, against the account name and
    the client; returns the rows' ids."""
    now = utc_now(now)
    rows = [LoginAttempt(key=key, at=now) for key in _attempt_keys(username, client)]
    s.add_all(rows)
    s.flush()
    return [row.id for row in rows]


def clear_failed_sign_ins(s: Session, username: str) -> int:
    """Forget the account's failed sign-ins after a successful one; returns how many."""
    key = _attempt_keys(username, None)[0]
    return s.execute(delete(LoginAttempt).where(LoginAttempt.key == key)).rowcount or 0


def _forget_attempt(s: Session, ids: Collection[int]) -> None:
    s.execute(delete(LoginAttempt).where(LoginAttempt.id.in_(ids)))


def sign_in(Session: sessionmaker[Session], username: str, password: str, client: str | None,
            now: datetime | None = None) -> User | None:
    """The user (detached) if the password matches, None if not (counted); SignInThrottled
    after too many failures.

    The attempt is counted before the password is checked, in a transaction of its own that
    commits at once, and only then are the attempts in the window counted, this one and those
    still being checked included. Checking first and recording after would let parallel
    attempts (one browser tab each, or a script) all pass the check before any of them was
    recorded; in this order at most ``SIGN_IN_FAILURE_LIMIT`` attempts per account and per
    client reach the password in a window. A throttled attempt is refused before the
    password is checked, even a right one, and its row is removed, so waiting out the
    message is enough. A failure keeps its row. A success removes it and clears the
    account's failures but not the client's: otherwise one account the guesser owns would
    reset the count between guesses at others."""
    username, now = normal_username(username), utc_now(now)
    with write_transaction(Session, "sign_in") as s:
        attempt = record_failed_sign_in(s, username, client, now)
    try:
        with Session() as s:
            check_sign_in_allowed(s, username, client, now, exclude=attempt)
    except SignInThrottled:
        with write_transaction(Session, "sign_in") as s:
            _forget_attempt(s, attempt)
        raise
    with Session() as s:
        user = user_by_name(s, username)
    # scrypt is slow by design: no transaction stays open while it runs.
    if not password_matches(user, password):
        return None
    with write_transaction(Session, "sign_in") as s:
        _forget_attempt(s, attempt)
        clear_failed_sign_ins(s, username)
    return user


def purge_old_login_attempts(s: Session, now: datetime | None = None, limit: int = PURGE_BATCH_ROWS) -> int:
    """Delete up to ``limit`` failed sign-ins older than the window; returns how many (repeat until fewer)."""
    cutoff = utc_now(now) - SIGN_IN_WINDOW
    batch = select(LoginAttempt.id).where(LoginAttempt.at <= cutoff).limit(limit)
    return s.execute(delete(LoginAttempt).where(LoginAttempt.id.in_(batch))).rowcount or 0
