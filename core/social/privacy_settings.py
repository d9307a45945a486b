"""An athlete's changes of what they hide from others: privacy zones added and removed,
hidden ends, the hidden map (``core.social.privacy`` says what each hides, and cuts it).

Each change clears the shown distances of all the athlete's activities first
(``clear_shown``, under their hiding lock) and sets them again from what is hidden now
(``reshow``), so that no board or feed counts a distance worked out from what was hidden
before.
"""

from __future__ import annotations

import math
import random

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from core.accounts.tables import User
from core.accounts.users import update_profile
from core.activities.shown import hold_hiding, lock_rows
from core.activities.tables import Activity
from core.social.privacy import (
    HIDE_ENDS_MAX_M,
    ZONE_MAX_M,
    ZONE_MIN_M,
    PrivacyError,
    hidden_circle,
    hidden_ends_m,
    hidings_of,
    plain,
)
from core.social.tables import PrivacyZone

MAX_ZONES = 10


def add_zone(s: Session, user: User, lat: float, lon: float, radius_m: float,
             rng: random.Random | None = None) -> PrivacyZone:
    """Add a privacy zone around (``lat``, ``lon``); its hidden circle is drawn here, once."""
    try:
        lat, lon, radius_m = float(lat), float(lon), float(radius_m)
    except (TypeError, ValueError):
        raise PrivacyError("a zone needs a latitude, a longitude and a radius in metres") from None
    if not (math.isfinite(lat) and -85.0 <= lat <= 85.0 and math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise PrivacyError("a zone's point must be a latitude within ±85° and a longitude within ±180°")
    if not (math.isfinite(radius_m) and ZONE_MIN_M <= radius_m <= ZONE_MAX_M):
        raise PrivacyError(f"a zone's radius must be from {ZONE_MIN_M:.0f} m to {ZONE_MAX_M:.0f} m")
    clear_shown(s, user.id)  # and the athlete's lock, so that two zones added at once are counted in turn
    count = s.scalar(select(func.count()).select_from(PrivacyZone).where(PrivacyZone.user_id == user.id))
    if count >= MAX_ZONES:
        raise PrivacyError(f"an athlete has at most {MAX_ZONES} privacy zones")
    hidden_lat, hidden_lon, hidden_radius = hidden_circle(lat, lon, radius_m, rng or random.SystemRandom())
    zone = PrivacyZone(user_id=user.id, lat=lat, lon=lon, radius_m=radius_m, hidden_lat=hidden_lat,
                       hidden_lon=hidden_lon, hidden_radius_m=hidden_radius)
    s.add(zone)
    s.flush()
    reshow(s, user.id)
    return zone


def delete_zone(s: Session, user: User, zone_id: int) -> bool:
    """Remove one of the athlete's zones; False if they have none by that id."""
    ours = (PrivacyZone.id == zone_id, PrivacyZone.user_id == user.id)
    if s.scalar(select(PrivacyZone.id).where(*ours)) is None:
        return False
    clear_shown(s, user.id)
    gone = s.execute(delete(PrivacyZone).where(*ours)).rowcount
    reshow(s, user.id)
    return bool(gone)


def zones_of(s: Session, user_id: int) -> list[PrivacyZone]:
    """The athlete's zones, oldest first (for their own eyes: they hold the point)."""
    return list(s.scalars(select(PrivacyZone).where(PrivacyZone.user_id == user_id).order_by(PrivacyZone.id)))


def set_hide_ends(s: Session, user: User, metres: float) -> None:
    """Hide the first and last ``metres`` (0 to a mile) of every activity from others."""
    try:
        metres = float(metres)
    except (TypeError, ValueError):
        raise PrivacyError("hidden ends are a number of metres") from None
    if not (math.isfinite(metres) and 0.0 <= metres <= HIDE_ENDS_MAX_M):
        raise PrivacyError(f"hidden ends must be from 0 to {HIDE_ENDS_MAX_M:.0f} m (a mile)")
    metres = round(metres, 1)
    if metres == hidden_ends_m(_settings_now(s, user)):
        return
    clear_shown(s, user.id)
    update_profile(s, user, hide_ends_m=metres)
    reshow(s, user.id)


def set_hide_map(s: Session, user: User, on: bool) -> None:
    """Hide (or show again) the whole map of every activity from others."""
    if bool(on) == bool(_settings_now(s, user).get("hide_map")):
        return
    clear_shown(s, user.id)
    update_profile(s, user, hide_map=bool(on))
    reshow(s, user.id)


def _settings_now(s: Session, user: User) -> dict:
    """The athlete's settings as stored now, read under their hiding lock (``hold_hiding``,
    PostgreSQL): a change of what they hide made meanwhile has committed, so a request is
    not taken for "unchanged" against a value another one has just replaced."""
    hold_hiding(s, [user.id])
    s.flush()
    s.refresh(user, attribute_names=["settings"])
    return user.settings or {}


def clear_shown(s: Session, user_id: int) -> None:
    """Before a change of what the athlete hides (then ``reshow``), under ``hold_hiding``
    taken first: the shown distances of all their activities cleared, their rows locked in
    id order, before the change locks the athlete's row (``update_profile``)."""
    hold_hiding(s, [user_id])
    s.flush()
    lock_rows(s, Activity.user_id == user_id)
    s.execute(update(Activity).where(Activity.user_id == user_id, Activity.shown_distance_m.is_not(None))
              .values(shown_distance_m=None).execution_options(synchronize_session=False))


def reshow(s: Session, user_id: int) -> None:
    """After a change of what the athlete hides (``clear_shown`` before it): under
    ``hold_hiding``, the shown distances of all their activities are set from what is hidden
    now, their own distances when that is nothing, else left for the worker (rows committed
    since the clearing included)."""
    s.flush()
    ours = Activity.user_id == user_id
    hold_hiding(s, [user_id])
    hiding = hidings_of(s, [user_id])[user_id]
    lock_rows(s, ours)
    if plain(hiding):
        s.execute(update(Activity).where(ours).values(shown_distance_m=func.coalesce(Activity.distance_m, 0.0))
                  .execution_options(synchronize_session=False))
    else:
        s.execute(update(Activity).where(ours, Activity.shown_distance_m.is_not(None))
                  .values(shown_distance_m=None).execution_options(synchronize_session=False))
    for obj in list(s.identity_map.values()):
        if isinstance(obj, Activity) and obj.user_id == user_id:
            s.expire(obj, ["shown_distance_m"])
