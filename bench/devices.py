"""Our statistics against what real devices recorded (FIT session totals).

For each FIT file in device_totals.csv (single sport, outdoor, with GPS), prints our
distance and moving time computed from the GPS points alone next to the device's
total_distance and total_timer_time, then the share within 1% (distance) and 3% (time).
Baselines in the same run: a plain point-to-point sum, gpxpy's moving data (the method
FitTrackee uses) and the elapsed time.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime

import gpxpy.gpx
import numpy as np
from _common import shared_tracks

from core.tracks.cleaning import clean_track
from core.tracks.formats import load_track
from core.tracks.geo import track_length_m
from core.tracks.stats import summarise


def gpxpy_moving_distance(track) -> float:
    seg = gpxpy.gpx.GPXTrackSegment()
    ok = np.isfinite(track.lat) & np.isfinite(track.t)
    for i in np.flatnonzero(ok):
        seg.points.append(gpxpy.gpx.GPXTrackPoint(
            float(track.lat[i]), float(track.lon[i]),
            time=datetime.fromtimestamp(float(track.t[i]), tz=UTC)))
    return seg.get_moving_data().moving_distance


def main() -> None:
    root = shared_tracks()
    with open(root / "device_totals.csv") as fh:
        rows = list(csv.DictReader(fh))
    print(f"{'file':58} {'device km':>9} {'ours km':>8} {'err %':>7} {'device s':>9} {'ours s':>8} {'err %':>7}")
    ok_d = ok_t = plain_ok = gpxpy_ok = elapsed_ok = 0
    for row in rows:
        track = load_track(root / row["file"])
        s = summarise(clean_track(track), points=len(track))
        dev_d = float(row["device_total_distance_m"])
        dev_t = float(row["device_total_timer_time_s"])
        err_d = s.distance_m / dev_d - 1
        err_t = s.moving_time_s / dev_t - 1
        ok_d += abs(err_d) <= 0.01
        ok_t += abs(err_t) <= 0.03
        gps = np.isfinite(track.lat) & np.isfinite(track.lon)
        plain_ok += abs(track_length_m(track.lat[gps], track.lon[gps]) / dev_d - 1) <= 0.01
        gpxpy_ok += abs(gpxpy_moving_distance(track) / dev_d - 1) <= 0.01
        times = track.t[np.isfinite(track.t)]
        elapsed_ok += abs((times.max() - times.min()) / dev_t - 1) <= 0.03
        print(f"{row['file']:58} {dev_d / 1000:9.2f} {s.distance_m / 1000:8.2f} {100 * err_d:+7.2f} "
              f"{dev_t:9.0f} {s.moving_time_s:8.0f} {100 * err_t:+7.2f}")
    n = len(rows)
    print(f"distance within 1%:    ours {ok_d}/{n} = {100 * ok_d / n:.1f}%   plain sum {100 * plain_ok / n:.1f}%   "
          f"gpxpy moving {100 * gpxpy_ok / n:.1f}%")
    print(f"moving time within 3%: ours {ok_t}/{n} = {100 * ok_t / n:.1f}%   elapsed time {100 * elapsed_ok / n:.1f}%")


if __name__ == "__main__":
    main()
