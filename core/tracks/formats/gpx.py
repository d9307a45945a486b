"""GPX: reading tracks and writing them."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from xml.etree import ElementTree

import gpxpy
import gpxpy.gpx
import numpy as np

from core.text import xml_text
from core.tracks.formats.common import epoch, extension_values, parse_xml
from core.tracks.track import Track, normalise_sport, track_from_rows

TPX = "http://www.garmin.com/xmlschemas/TrackPointExtension/v1"
# A time with a lower-case "t" or "z" (only those: the others are left as they are).
LOWER_TIME = re.compile(r"<time>(\s*[0-9]{4}-[0-9]{2}-[0-9]{2}(?:t[0-9:.]+(?:[zZ]|[+-][0-9:]+)?|T[0-9:.]+z)\s*)</time>")


def read_gpx(data: bytes) -> Track:
    parse_xml(data)  # refuses DTDs and entities before gpxpy sees the text
    # RFC 3339 lets "t" and "z" be written in lower case, and some writers do; gpxpy reads
    # only the upper case and would drop every time.
    text = LOWER_TIME.sub(lambda m: f"<time>{m.group(1).upper()}</time>", data.decode("utf-8", errors="replace"))
    gpx = gpxpy.parse(io.StringIO(text))
    rows = []
    sport_label = None
    name = gpx.name
    for trk in gpx.tracks:
        sport_label = sport_label or trk.type
        name = name or trk.name
        for seg in trk.segments:
            for p in seg.points:
                hr, cad = extension_values(p.extensions)
                acc = None
                if p.horizontal_dilution is not None:
                    acc = 5.0 * p.horizontal_dilution  # HDOP times a typical 5 m receiver error
                rows.append((epoch(p.time), p.latitude, p.longitude, p.elevation, acc, hr, cad))
    if not gpx.tracks:
        for route in gpx.routes:
            for p in route.points:
                rows.append((epoch(p.time), p.latitude, p.longitude, p.elevation, None, None, None))
    sport = normalise_sport(sport_label) if sport_label else normalise_sport(name)
    return track_from_rows(rows, sport=sport, name=name, device=gpx.creator)


def to_gpx(track: Track, name: str | None = None) -> str:
    """Serialise the points that carry a position and a time as a GPX 1.1 document (the name
    without the characters XML forbids, which an older title may hold), with heart rate and
    cadence as Garmin's TrackPointExtension and the accuracy as HDOP, as ``read_gpx`` reads
    them back. A time no date can hold leaves its point out."""
    gpx = gpxpy.gpx.GPX()
    gpx.creator = "tracker"
    gpx.nsmap["gpxtpx"] = TPX
    trk = gpxpy.gpx.GPXTrack(name=xml_text(name or track.name) or None)
    trk.type = track.sport
    gpx.tracks.append(trk)
    seg = gpxpy.gpx.GPXTrackSegment()
    trk.segments.append(seg)
    ok = np.isfinite(track.lat) & np.isfinite(track.lon) & np.isfinite(track.t)
    for i in np.flatnonzero(ok):
        try:
            when = datetime.fromtimestamp(float(track.t[i]), tz=UTC)
        except (OverflowError, OSError, ValueError):
            continue
        ele = float(track.ele[i]) if np.isfinite(track.ele[i]) else None
        point = gpxpy.gpx.GPXTrackPoint(float(track.lat[i]), float(track.lon[i]), elevation=ele, time=when)
        if np.isfinite(track.acc[i]):
            point.horizontal_dilution = round(float(track.acc[i]) / 5.0, 2)  # as read_gpx reads it
        extras = [(tag, track.hr[i] if tag == "hr" else track.cad[i]) for tag in ("hr", "cad")]
        extras = [(tag, v) for tag, v in extras if np.isfinite(v)]
        if extras:
            ext = ElementTree.Element(f"{{{TPX}}}TrackPointExtension")
            for tag, value in extras:
                ElementTree.SubElement(ext, f"{{{TPX}}}{tag}").text = f"{float(value):g}"
            point.extensions.append(ext)
        seg.points.append(point)
    return gpx.to_xml(version="1.1")
