"""``python -m core stats``: summaries of track files."""

from __future__ import annotations

import json

from core.tracks.track import TRACK_SPORTS
from core.units import json_safe


def read_tracks(files):
    """(name, track) per file; a file that cannot be read gets its JSON error line printed
    and comes back as (name, None)."""
    from core.tracks.formats import load_track
    from core.tracks.formats.common import TrackFileError

    for name in files:
        try:
            yield name, load_track(name)
        except TrackFileError as exc:
            print(json.dumps({"file": name, "error": str(exc)}), flush=True)
            yield name, None


def cmd_stats(args) -> int:
    """Print one JSON line of statistics per file; exit 1 if any file failed."""
    from core.tracks.cleaning import clean_track
    from core.tracks.stats import summarise

    failed = 0
    for name, track in read_tracks(args.files):
        if track is None:
            failed += 1
            continue
        if args.sport:
            track.sport = args.sport
        summary = summarise(clean_track(track), points=len(track))
        record = {
            "file": name,
            "sport": track.sport,
            "indoor": track.indoor,
            "distance_m": round(summary.distance_m, 1),
            "moving_time_s": round(summary.moving_time_s, 1),
            "elapsed_time_s": round(summary.elapsed_time_s, 1),
            "avg_pace_s_per_km": _round(summary.avg_pace_s_per_km),
            "avg_speed_mps": _round(summary.avg_speed_mps, 2),
            "max_speed_mps": _round(summary.max_speed_mps, 2),
            "best_1km_s": _round(summary.best_pace_1km_s_per_km),
            "elevation_gain_m": _round(summary.elevation_gain_m),
            "elevation_loss_m": _round(summary.elevation_loss_m),
            "points": summary.points,
            "gps_points": summary.gps_points,
            "dropped": summary.dropped,
        }
        print(json.dumps(json_safe(record)), flush=True)
    return 1 if failed else 0


def _round(value, digits: int = 1):
    return None if value is None else round(value, digits)


def add_commands(sub) -> None:
    p = sub.add_parser("stats", help="print statistics of GPX, TCX or FIT files as JSON lines")
    p.add_argument("files", nargs="+", type=str)
    p.add_argument("--sport", choices=TRACK_SPORTS, help="override the file's sport")
    p.set_defaults(func=cmd_stats)
