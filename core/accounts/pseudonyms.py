"""Pseudonymous athlete ids for training models.

A model is trained on what athletes did, never on who they are: before rows leave the
tables for a training run, each athlete's id is replaced by a keyed hash of it (HMAC-SHA256
under a key drawn for that run and never stored). Within the run the same athlete always
gets the same pseudonym, so their rows still group together (a collaborative filter needs
that); after it, nothing maps a pseudonym back to the athlete, and the next run draws other
ones.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


class Pseudonyms:
    """Athlete id -> a 63-bit pseudonym, stable for this object's life only."""

    def __init__(self, key: bytes | None = None):
        self._key = key or secrets.token_bytes(32)
        self._of: dict[int, int] = {}

    def __call__(self, user_id: int) -> int:
        alias = self._of.get(user_id)
        if alias is None:
            digest = hmac.new(self._key, str(int(user_id)).encode(), hashlib.sha256).digest()
            alias = self._of[user_id] = int.from_bytes(digest[:8], "big") >> 1
        return alias
