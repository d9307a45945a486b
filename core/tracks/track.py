"""The point model every importer and the ingest path produce: columns of numpy arrays.

A track is a set of equal-length float64 arrays: time (Unix seconds, UTC), latitude and
longitude in degrees, and optional elevation (m), horizontal accuracy (m), heart rate (bpm)
and cadence (rpm or spm). A missing value is NaN, so records without a position (heart rate
only, a GPS drop-out) travel alongside and are dropped with a reason by the cleaner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

# What a track file may say it records; activities are runs or rides (core.activities.tables.SPORTS),
# and an import refuses a file that says walk or other unless the athlete chooses.
TRACK_SPORTS = ("run", "ride", "walk", "other")
COLUMNS = ("t", "lat", "lon", "ele", "acc", "hr", "cad")


@dataclass
class Track:
    """Raw recorded points of one activity, before cleaning."""

    t: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    ele: np.ndarray
    acc: np.ndarray
    hr: np.ndarray
    cad: np.ndarray
    sport: str = "other"
    name: str | None = None
    device: str | None = None
    indoor: bool = False
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.t.size)

    @property
    def start_time(self) -> datetime | None:
        """The first finite timestamp, as an aware UTC datetime."""
        finite = self.t[np.isfinite(self.t)]
        if finite.size == 0:
            return None
        return datetime.fromtimestamp(float(finite.min()), tz=UTC)

    @property
    def gps_points(self) -> int:
        """How many points carry a position."""
        return int(np.count_nonzero(np.isfinite(self.lat) & np.isfinite(self.lon)))

    def take(self, index: np.ndarray) -> Track:
        """A new track holding only the points selected by ``index`` (mask or positions)."""
        cols = {name: getattr(self, name)[index] for name in COLUMNS}
        return Track(**cols, sport=self.sport, name=self.name, device=self.device,
                     indoor=self.indoor, meta=dict(self.meta))


def track_from_rows(rows: list[tuple], sport: str = "other", **kwargs) -> Track:
    """Build a track from rows of (t, lat, lon, ele, acc, hr, cad); None becomes NaN."""
    if rows:
        data = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)
        if data.shape[1] < len(COLUMNS):
            pad = np.full((data.shape[0], len(COLUMNS) - data.shape[1]), np.nan)
            data = np.hstack([data, pad])
    else:
        data = np.empty((0, len(COLUMNS)))
    cols = {name: np.ascontiguousarray(data[:, i]) for i, name in enumerate(COLUMNS)}
    return Track(**cols, sport=sport, **kwargs)


def normalise_sport(raw: str | None) -> str:
    """Map a file's sport label (FIT, TCX, GPX) onto run, ride, walk or other."""
    if not raw:
        return "other"
    label = str(raw).strip().lower()
    if any(word in label for word in ("run", "jog", "trail")):
        return "run"
    if any(word in label for word in ("bik", "cycl", "ride", "bicycl", "mtb")):
        return "ride"
    if any(word in label for word in ("walk", "hik")):
        return "walk"
    return "other"
