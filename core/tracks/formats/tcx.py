"""TCX (Garmin Training Center) tracks: reading them, and writing them."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree import ElementTree

import numpy as np

from core.text import xml_text
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
                float_or_none(child_text(tp, "Extensions", "Accuracy")),
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


TCX = "http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"
TCX_SPORTS = {"run": "Running", "ride": "Biking"}
ACCURACY = "urn:tracker:accuracy"  # a fix's horizontal accuracy in metres, in a point's Extensions


def to_tcx(track: Track, name: str | None = None) -> str:
    """Serialise every point with a time as a TCX document, as ``read_tcx`` reads it back:
    its position, elevation, heart rate, cadence and accuracy (an extension) where it has them. Unlike GPX, a point
    without a position (an indoor session, a device's minutes before it had a fix) keeps its
    place, so the recording's start, length and heart rate are whole. A time no date can hold
    leaves its point out."""
    def sub(parent, tag: str, text: str | None = None):
        element = ElementTree.SubElement(parent, tag)
        if text is not None:
            element.text = text
        return element

    root = ElementTree.Element("TrainingCenterDatabase", xmlns=TCX)
    activity = sub(sub(root, "Activities"), "Activity")
    activity.set("Sport", TCX_SPORTS.get(track.sport, "Other"))
    points = []
    for i in np.flatnonzero(np.isfinite(track.t)):
        try:
            points.append((i, datetime.fromtimestamp(float(track.t[i]), tz=UTC)))
        except (OverflowError, OSError, ValueError):
            continue
    sub(activity, "Id", _stamp(points[0][1]) if points else "")
    lap = sub(activity, "Lap")
    if points:
        lap.set("StartTime", _stamp(points[0][1]))
        sub(lap, "TotalTimeSeconds", f"{float(track.t[points[-1][0]] - track.t[points[0][0]]):.3f}")
    trail = sub(lap, "Track")
    for i, when in points:
        tp = sub(trail, "Trackpoint")
        sub(tp, "Time", _stamp(when))
        if np.isfinite(track.lat[i]) and np.isfinite(track.lon[i]):
            position = sub(tp, "Position")
            sub(position, "LatitudeDegrees", f"{float(track.lat[i]):.9f}")
            sub(position, "LongitudeDegrees", f"{float(track.lon[i]):.9f}")
        if np.isfinite(track.ele[i]):
            sub(tp, "AltitudeMeters", f"{float(track.ele[i]):.3f}")
        if np.isfinite(track.hr[i]):
            sub(sub(tp, "HeartRateBpm"), "Value", f"{round(float(track.hr[i]))}")
        if np.isfinite(track.cad[i]):
            sub(tp, "Cadence", f"{round(float(track.cad[i]))}")
        if np.isfinite(track.acc[i]):  # TCX has no field for it: an extension of ours, as read_tcx reads it
            accuracy = sub(sub(tp, "Extensions"), "Accuracy", f"{float(track.acc[i]):.2f}")
            accuracy.set("xmlns", ACCURACY)
    if xml_text(name or track.name):
        sub(activity, "Notes", xml_text(name or track.name))
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True)


def _stamp(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
