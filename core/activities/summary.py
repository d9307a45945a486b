"""An activity's summary: its recorded track and pauses, summarised and applied; its
per-point profile and splits for display.

``pause_intervals`` is the one place that works out when an activity was paused, from its
stored lifecycle events: the summary, the profile, the live statistics rebuilt from storage
(``core.activities.open``) and the ingest server's replay all take their pauses from it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.activities.shown import settle_shown
from core.activities.tables import COMMAND_STATUS, HALTED_STATUSES, Activity, ActivityEvent
from core.storage.points import stored_track
from core.tracks.cleaning import CleanTrack, clean_track
from core.tracks.stats import Profile, Summary, build_profile, splits, summarise
from core.tracks.track import Track
from core.units import unit_length_m

log = logging.getLogger(__name__)


def pause_intervals(s: Session, activity: Activity) -> list[tuple[float, float]]:
    """Time ranges during which the activity was paused or stopped, from its stored events:
    a pause or stop opens one, a resume closes it; one still open ends at infinity."""
    return intervals_of(s.execute(select(ActivityEvent.command, ActivityEvent.at)
                                  .where(ActivityEvent.activity_id == activity.id)
                                  .order_by(ActivityEvent.at, ActivityEvent.id)).all())


def intervals_of(events) -> list[tuple[float, float]]:
    """``pause_intervals`` of (command, at) events in the order they happened."""
    intervals = []
    paused_at = None
    for command, at in events:
        if COMMAND_STATUS.get(command) in HALTED_STATUSES and paused_at is None:
            paused_at = at
        elif command == "resume" and paused_at is not None:
            intervals.append((paused_at, at))
            paused_at = None
    if paused_at is not None:
        intervals.append((paused_at, math.inf))
    return intervals


def without_paused(track: Track, intervals) -> Track:
    """The points recorded while the activity ran."""
    paused = np.zeros(len(track), dtype=bool)
    for start, end in intervals:
        paused |= (track.t > start) & (track.t < end)
    return track.take(~paused)


def recorded_track(s: Session, activity: Activity) -> tuple[Track, list[tuple[float, float]], int]:
    """The stored points recorded while the activity ran (those logged while paused taken
    out), the pause intervals, and how many points were stored in all."""
    track = stored_track(s, activity)
    intervals = pause_intervals(s, activity)
    return without_paused(track, intervals), intervals, len(track)


def summarise_activity(s: Session, activity: Activity) -> Summary:
    """Compute the summary of an activity from its stored points and pauses."""
    track, intervals, count = recorded_track(s, activity)
    summary = summarise(clean_track(track), points=count, pauses=intervals)
    if count > len(track):
        summary.dropped["paused"] = count - len(track)
    return summary


def apply_summary(activity: Activity, summary: Summary) -> None:
    """Copy a summary onto the activity's columns."""
    activity.distance_m = summary.distance_m
    activity.moving_time_s = summary.moving_time_s
    activity.elapsed_time_s = summary.elapsed_time_s
    activity.avg_pace_s_per_km = summary.avg_pace_s_per_km
    activity.avg_speed_mps = summary.avg_speed_mps
    activity.max_speed_mps = summary.max_speed_mps
    activity.best_1km_s = summary.best_pace_1km_s_per_km
    activity.elevation_gain_m = summary.elevation_gain_m
    activity.elevation_loss_m = summary.elevation_loss_m
    activity.point_count = summary.points
    activity.summary = summary.to_dict()
    activity.shown_distance_m = None  # worked out anew: ``core.social.privacy.settle_shown``
    if summary.start_time is not None:
        activity.start_time = datetime.fromtimestamp(summary.start_time, tz=UTC)


def complete_activity(s: Session, activity: Activity, at: float | None = None,
                      summary: Summary | None = None) -> Summary:
    """Compute the authoritative summary from the stored track (or take ``summary``, worked
    out from the same points and pauses) and mark completion time."""
    s.flush()
    if summary is None:
        summary = summarise_activity(s, activity)
    apply_summary(activity, summary)
    settle_shown(s, activity)
    activity.completed_at = datetime.fromtimestamp(at if at is not None else time.time(), tz=UTC)
    return summary


def activity_profile(s: Session, activity: Activity, track: Track | None = None) -> tuple[CleanTrack, Profile]:
    """The cleaned points of the activity's track (``track``, else the stored one) and their
    per-point profile with its pauses respected, for charts, maps and splits."""
    clean = clean_track(stored_track(s, activity) if track is None else track)
    profile, _ = build_profile(clean, pause_intervals(s, activity))
    return clean, profile


def splits_in(units: str, summary: dict, profile: Profile) -> list[dict]:
    """The activity's splits per kilometre, or per mile for imperial ``units``: per kilometre
    those worked out with its summary at completion, per mile those of its profile; both by
    ``core.tracks.stats.splits``."""
    if units != "imperial":
        return list(summary.get("splits") or [])
    return [asdict(split) for split in splits(profile, unit_length_m(units))]
