"""TCX (Garmin Training Center) tracks."""

from __future__ import annotations

from core.tracks.formats.common import TrackFileError, _child_text, _float, _local, _parse_time, _parse_xml
from core.tracks.track import Track, normalise_sport, track_from_rows


def _read_tcx(data: bytes) -> Track:
    root = _parse_xml(data)
    if _local(root.tag) != "TrainingCenterDatabase":
        raise TrackFileError("not a TCX file: root element is not TrainingCenterDatabase")
    rows = []
    sports = []
    device = None
    for activity in root.iter():
        if _local(activity.tag) not in ("Activity", "MultiSportSession"):
            continue
        sports.append(activity.get("Sport"))
        device = device or _child_text(activity, "Creator", "Name")
        for tp in activity.iter():
            if _local(tp.tag) != "Trackpoint":
                continue
            rows.append((
                _parse_time(_child_text(tp, "Time")),
                _float(_child_text(tp, "Position", "LatitudeDegrees")),
                _float(_child_text(tp, "Position", "LongitudeDegrees")),
                _float(_child_text(tp, "AltitudeMeters")),
                None,
                _float(_child_text(tp, "HeartRateBpm", "Value")),
                _float(_child_text(tp, "Cadence")),
            ))
    labels = {normalise_sport(s) for s in sports if s}
    sport = labels.pop() if len(labels) == 1 else "other"
    track = track_from_rows(rows, sport=sport, device=device)
    track.meta["activities"] = len(sports)
    if len(sports) > 1:
        track.meta["multisport"] = True
    return track
