"""The figures other athletes are shown of an activity something of which its athlete
hides (``core.social.privacy``): worked out from what is left (``shown_figures``), so the
displayed distance or time says nothing of the hidden part, and the distance boards add up
(``shown_distance``, stored as ``Activity.shown_distance_m``). Settling that figure when an
activity's own figures change is registered with the activities layer below
(``core.activities.shown``)."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from core.activities.shown import register_settle
from core.social.privacy import NOTHING, Hiding, hidings_of, plain, visible_track
from core.tracks.track import Track

FIGURES = ("distance_m", "moving_time_s", "elapsed_time_s", "avg_speed_mps", "avg_pace_s_per_km",
           "elevation_gain_m", "start_time")


def figures_of_track(track: Track, pauses: list[tuple[float, float]] | None = None) -> dict:
    """The figures of a (cut) track, as the activity's own are worked out (points logged
    while paused left out): what others are shown of an activity something of which is
    hidden from them."""
    from datetime import UTC, datetime

    from core.tracks.cleaning import clean_track
    from core.tracks.stats import summarise

    pauses = list(pauses or [])
    paused = np.zeros(len(track), dtype=bool)
    for start, end in pauses:
        paused |= (track.t > start) & (track.t < end)
    summary = summarise(clean_track(track.take(~paused)), points=len(track), pauses=pauses)
    start = datetime.fromtimestamp(summary.start_time, tz=UTC) if summary.start_time is not None else None
    return {"distance_m": summary.distance_m, "moving_time_s": summary.moving_time_s,
            "elapsed_time_s": summary.elapsed_time_s, "avg_speed_mps": summary.avg_speed_mps,
            "avg_pace_s_per_km": summary.avg_pace_s_per_km, "elevation_gain_m": summary.elevation_gain_m,
            "start_time": start, "summary": summary.to_dict()}


def _figures_left(s: Session, a, hiding: Hiding) -> dict | None:
    """The figures of what ``hiding`` leaves of activity ``a`` (``shown_figures``), or None
    when its stored figures stand."""
    from core.activities.summary import pause_intervals
    from core.storage.points import stored_track

    if plain(hiding):  # nothing hidden, or no map: nothing drawn locates anything
        return None
    seen = visible_track(hiding, stored_track(s, a), a.id, draw=False)
    if int(np.isfinite(seen.lat).sum()) < 2:
        return None  # nothing left to draw: the figures locate nothing, and stand
    return figures_of_track(seen, pause_intervals(s, a))


def shown_figures(s: Session, viewer_id: int | None, activities) -> dict:
    """For each activity of which something is hidden from ``viewer_id``: the figures to show
    instead of the stored ones (``figures_of_track`` of what is left). An activity whose map
    the draw withholds (``map_kept``) shows the figures of what its map would show: its
    stored ones, set against those of the same route with a map, would tell how much is
    hidden. Activities whose stored figures stand are missing: nothing hidden, or nothing
    left to draw (the whole map hidden, or every point in a zone), where the figures locate
    nothing."""
    others = [a for a in activities if viewer_id is None or a.user_id != viewer_id]
    hidings = hidings_of(s, [a.user_id for a in others])
    out = {}
    for a in others:
        figures = _figures_left(s, a, hidings.get(a.user_id, NOTHING))
        if figures is not None:
            out[a.id] = figures
    return out


def shown_distance(s: Session, activity, hiding: Hiding | None = None) -> float:
    """The distance others are shown of ``activity`` (what ``shown_figures`` shows), which
    boards add up (``Activity.shown_distance_m``): were they to add up the whole distance, a
    board's total less the distances in the feed would tell how much each activity hides."""
    if hiding is None:
        hiding = hidings_of(s, [activity.user_id])[activity.user_id]
    figures = _figures_left(s, activity, hiding)
    return float(figures["distance_m"] if figures is not None else activity.distance_m or 0.0)


def _settle(s: Session, activity) -> None:
    """``core.activities.shown.settle_shown``: the activity's own distance when the athlete
    hides nothing (or the whole map), else None, for the worker (``core.jobs.shown``)."""
    hiding = hidings_of(s, [activity.user_id])[activity.user_id]
    activity.shown_distance_m = (activity.distance_m or 0.0) if plain(hiding) else None


register_settle(_settle)
