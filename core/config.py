"""Configuration read from ``TRACKER_*`` environment variables, in one place.

Every other module asks this one; nothing else reads the environment, so the names and
defaults documented in the README are the whole story.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
OSM_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_ATTRIBUTION = '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'


@dataclass(frozen=True)
class Settings:
    """The process's configuration, read once from the environment."""

    database_url: str
    redis_url: str | None
    data_dir: Path
    shared_tracks_dir: Path | None
    max_upload_bytes: int
    max_points_per_file: int
    tile_url: str
    tile_attribution: str
    # A fix stream's activity is completed once its device has sent nothing new this long.
    device_idle_complete_s: float = 600.0
    # How weekly challenges choose their difficulty: "adaptive" (a contextual bandit that
    # learns from outcomes, core.challenges.adaptive) or "fixed" (one step above the usual week).
    challenge_policy: str = "adaptive"
    # How long an athlete's archive of their data is kept once built (core.jobs.export).
    export_keep_hours: float = 72.0
    # Storage tiers (core.storage.tiers): where archived points go (a folder, or any
    # filesystem URL pyarrow reads: s3://bucket/prefix, gs://...; None: data_dir/archive),
    # after how many days without a start or a read an activity's points are archived, and
    # after how many reads an archived activity comes back to the database: reads each
    # within ``tier_hot_window_days`` of the one before (a longer quiet starts the count again).
    archive_url: str | None = None
    tier_cold_days: float = 180.0
    tier_hot_reads: int = 3
    tier_hot_window_days: float = 30.0
    # PostgreSQL: how many activity ids each partition of the points table covers
    # (core.storage.partitions; new partitions take it, existing ones keep their range).
    point_partition_size: int = 20_000
    # The worker's Prometheus metrics on this port of 127.0.0.1 (core.jobs.metrics); None: not served.
    worker_metrics_port: int | None = None
    # Spark for training on data one machine outgrows (core.spark): the master URL
    # (``local[2]``, ``spark://host:7077``, ``yarn``...); None: everything runs in this process.
    # The JDBC drivers' jars Spark reads the database with (comma-separated paths); None:
    # Debian's libpostgresql-jdbc-java and libxerial-sqlite-jdbc-java where installed.
    spark_master: str | None = None
    spark_jars: str | None = None


def _shared_tracks_dir() -> Path | None:
    explicit = os.environ.get("TRACKER_SHARED_TRACKS")
    if explicit:
        path = Path(explicit)
        return path if path.is_dir() else None
    candidate = PROJECT_ROOT.parent / "shared" / "data" / "tracks"
    return candidate if candidate.is_dir() else None


def load_settings() -> Settings:
    """Read the settings from the environment (call again after changing it)."""
    data_dir = Path(os.environ.get("TRACKER_DATA_DIR", DEFAULT_DATA_DIR))
    default_db = f"sqlite:///{data_dir / 'tracker.db'}"
    return Settings(
        database_url=os.environ.get("TRACKER_DATABASE_URL", default_db),
        redis_url=os.environ.get("TRACKER_REDIS_URL") or None,
        data_dir=data_dir,
        shared_tracks_dir=_shared_tracks_dir(),
        max_upload_bytes=int(os.environ.get("TRACKER_MAX_UPLOAD_BYTES", 64 * 1024 * 1024)),
        max_points_per_file=int(os.environ.get("TRACKER_MAX_POINTS_PER_FILE", 500_000)),
        tile_url=os.environ.get("TRACKER_TILE_URL", OSM_TILES),
        tile_attribution=os.environ.get("TRACKER_TILE_ATTRIBUTION", OSM_ATTRIBUTION),
        device_idle_complete_s=float(os.environ.get("TRACKER_DEVICE_IDLE_COMPLETE_S", 600.0)),
        export_keep_hours=float(os.environ.get("TRACKER_EXPORT_KEEP_HOURS", 72.0)),
        archive_url=os.environ.get("TRACKER_ARCHIVE_URL") or None,
        tier_cold_days=float(os.environ.get("TRACKER_TIER_COLD_DAYS", 180.0)),
        tier_hot_reads=int(os.environ.get("TRACKER_TIER_HOT_READS", 3)),
        tier_hot_window_days=_days("TRACKER_TIER_HOT_WINDOW_DAYS", 30.0),
        point_partition_size=_positive("TRACKER_POINT_PARTITION_SIZE", 20_000),
        worker_metrics_port=(_positive("TRACKER_WORKER_METRICS_PORT", 1)
                             if os.environ.get("TRACKER_WORKER_METRICS_PORT") else None),
        challenge_policy=_choice("TRACKER_CHALLENGE_POLICY", ("adaptive", "fixed"), "adaptive"),
        spark_master=os.environ.get("TRACKER_SPARK_MASTER") or None,
        spark_jars=os.environ.get("TRACKER_SPARK_JARS") or None,
    )


def _positive(name: str, default: int) -> int:
    value = int(os.environ.get(name) or default)
    if value < 1:
        raise ValueError(f"{name} must be a positive whole number, not {value}")
    return value


def _days(name: str, default: float) -> float:
    value = float(os.environ.get(name) or default)
    if not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a number of days above 0, not {value}")
    return value


def _choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    value = os.environ.get(name) or default
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value
