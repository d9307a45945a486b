"""TCX (Garmin Training Center) tracks."""

from __future__ import annotations

from core.tracks.formats.common import (
    TrackFileError,
    child_text,
    float_or_none,
    local_name,
    parse_time,
    parse_xml,
)
from core.tracks.track import Track, normalise_sport, track_from_rows


def read_tcx(data: bytes) -> Track:
    root = parse_xml(data)
    if local_name(root.tag) != "TrainingCenterDatabase":
        raise TrackFileError("not a TCX file: root element is not TrainingCenterDatabase")
    rows = []
    sports = []
    device = None
    for activity in root.iter():
        if local_name(activity.tag) not in ("Activity", "MultiSportSession"):
            continue
        sports.append(activity.get("Sport"))
        device = device or child_text(activity, "Creator", "Name")
        for tp in activity.iter():
            if local_name(tp.tag) != "Trackpoint":
                continue
            rows.append((
                parse_time(child_text(tp, "Time")),
                float_or_none(child_text(tp, "Position", "LatitudeDegrees")),
                float_or_none(child_text(tp, "Position", "LongitudeDegrees")),
                float_or_none(child_text(tp, "AltitudeMeters")),
                None,
                float_or_none(child_text(tp, "HeartRateBpm", "Value")),
                float_or_none(child_text(tp, "Cadence")),
            ))
    labels = {normalise_sport(s) for s in sports if s}
    sport = labels.pop() if len(labels) == 1 else "other"
    track = track_from_rows(rows, sport=sport, device=device)
    track.meta["activities"] = len(sports)
    if len(sports) > 1:
        track.meta["multisport"] = True
    return track
