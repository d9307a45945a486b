"""Fixtures of the fix-stream tests: a sessionmaker on each database, athletes with tokens."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from core.accounts.tokens import create_device_token
from core.accounts.users import create_user
from core.devices.fixes import Device, Fix, store_fixes
from core.devices.tables import DeviceTrack
from core.jobs.devices import complete_quiet

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


def late_activities(Sessions, make_device, n: int, devices_out: list | None = None, t0: float = 1_750_000_000.0,
                    idle: float = 600.0) -> list[int]:
    """``n`` completed runs of 60 fixes (one every 5 s from ``t0``, received a day later), of
    which the last 20 landed after completion (the only ones waiting: earlier tests' on this
    database are set aside)."""
    with Sessions() as s, s.begin():
        s.execute(update(DeviceTrack).values(recompute=False))
    ids = []
    for k in range(n):
        device = make_device("run")
        fixes = [Fix(t0 + k * 10_000 + i * 5.0, 45.0 + i * 1e-4, 7.0) for i in range(60)]
        store_fixes(Sessions, [(device, f) for f in fixes[:40]], now=t0 + 86_400.0, idle_s=idle)
        complete_quiet(Sessions, idle, now=t0 + 86_400.0 + idle + 1)
        out = store_fixes(Sessions, [(device, f) for f in fixes[40:]], now=t0 + 86_400.0 + 2 * idle, idle_s=idle)
        ids.append(out[0].activity_id)
        if devices_out is not None:
            devices_out.append(device)
    return ids


def failing_summaries(monkeypatch, broken: set[int]) -> set[int]:
    """Make the recomputation of the activities in ``broken`` fail with their own error
    (their track cannot be summarised); the set is the caller's to change (empty: mended)."""
    import core.jobs.devices as devices

    real = devices.summarise_activity

    def summarise_activity(s, activity):
        if activity.id in broken:
            raise ValueError("no track to summarise")
        return real(s, activity)

    monkeypatch.setattr(devices, "summarise_activity", summarise_activity)
    return broken
