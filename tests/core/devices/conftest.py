"""Fixtures of the fix-stream tests: a sessionmaker on each database, athletes with tokens."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from sqlalchemy.orm import sessionmaker

from core.accounts.tokens import create_device_token
from core.accounts.users import create_user
from core.devices.fixes import Device, Fix

_names = itertools.count()


@pytest.fixture
def Sessions(engine):
    return sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
def make_device(Sessions):
    """A new athlete with a device token of ``sport`` (None: inferred)."""

    def make(sport: str | None = None) -> Device:
        with Sessions() as s, s.begin():
            user = create_user(s, f"phone_{time.time_ns() % 10**9}_{next(_names)}")
            token, _ = create_device_token(s, user, name="phone", sport=sport)
            return Device(token.id, user.id, sport)

    return make


def fixes_of(track, shift_s: float = 0.0) -> list[Fix]:
    """The track's fixes with a position, as a phone app would send them."""
    out = []
    for t, lat, lon, ele, acc in zip(track.t, track.lat, track.lon, track.ele, track.acc, strict=True):
        if not (np.isfinite(t) and np.isfinite(lat) and np.isfinite(lon)):
            continue
        out.append(Fix(float(t) + shift_s, float(lat), float(lon),
                       ele=float(ele) if np.isfinite(ele) else None,
                       acc=float(acc) if np.isfinite(acc) else None))
    return out
