"""Configuration read from ``TRACKER_*`` environment variables, in one place.

Every other module asks this one; nothing else reads the environment, so the names and
defaults documented in the README are the whole story.
"""

from __future__ import annotations

import math
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
OSM_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
MAX_PARTITION_SIZE = 10**12  # activity ids per partition of the points table, at most
MAX_DAYS = 36_500  # the longest duration a setting takes (a century: dates stay in range)
MAX_ID = 2**63 - 1  # the largest whole number the databases store (bigint)
OSM_ATTRIBUTION = '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'


class SettingsError(ValueError):
    """A setting from the environment that cannot be used: the message names it and why."""


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
    # The worker's Prometheus metrics on this port (core.jobs.metrics); None: not served. The
    # address they listen on: this machine only unless a scraper elsewhere needs them.
    worker_metrics_port: int | None = None
    worker_metrics_host: str = "127.0.0.1"
    # Spark for training on data one machine outgrows (core.spark): the master URL
    # (``local[2]``, ``spark://host:7077``, ``yarn``...); None: everything runs in this process.
    # The JDBC drivers' jars Spark reads the database with (comma-separated paths); None:
    # Debian's libpostgresql-jdbc-java and libxerial-sqlite-jdbc-java where installed.
    spark_master: str | None = None
    spark_jars: str | None = None
    # The Spark driver's memory (spark.driver.memory: 2g, 512m; a bare number is MiB).
    spark_driver_memory: str = "2g"


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
        database_url=_database_url("TRACKER_DATABASE_URL", default_db),
        redis_url=_redis_url("TRACKER_REDIS_URL"),
        data_dir=data_dir,
        shared_tracks_dir=_shared_tracks_dir(),
        max_upload_bytes=_parsed("TRACKER_MAX_UPLOAD_BYTES", 64 * 1024 * 1024, int,
                                 f"a whole number of bytes from 1 to {MAX_ID}", lambda v: 0 < v <= MAX_ID),
        max_points_per_file=_parsed("TRACKER_MAX_POINTS_PER_FILE", 500_000, int,
                                    f"a whole number from 1 to {MAX_ID}", lambda v: 0 < v <= MAX_ID),
        tile_url=os.environ.get("TRACKER_TILE_URL", OSM_TILES),
        tile_attribution=os.environ.get("TRACKER_TILE_ATTRIBUTION", OSM_ATTRIBUTION),
        device_idle_complete_s=_parsed("TRACKER_DEVICE_IDLE_COMPLETE_S", 600.0, float,
                                       f"a number of seconds above 0, at most {MAX_DAYS * 86400}",
                                       lambda v: 0 < v <= MAX_DAYS * 86400),
        export_keep_hours=_parsed("TRACKER_EXPORT_KEEP_HOURS", 72.0, float,
                                  f"a number of hours above 0, at most {MAX_DAYS * 24}",
                                  lambda v: 0 < v <= MAX_DAYS * 24),
        archive_url=os.environ.get("TRACKER_ARCHIVE_URL") or None,
        tier_cold_days=_parsed("TRACKER_TIER_COLD_DAYS", 180.0, float, f"a number of days from 0 to {MAX_DAYS}",
                               lambda v: 0 <= v <= MAX_DAYS),
        # 0: every archived activity read since it was archived comes back.
        tier_hot_reads=_parsed("TRACKER_TIER_HOT_READS", 3, int, f"a whole number of reads from 0 to {MAX_ID}",
                               lambda v: 0 <= v <= MAX_ID),
        tier_hot_window_days=_parsed("TRACKER_TIER_HOT_WINDOW_DAYS", 30.0, float,
                                     f"a number of days above 0, at most {MAX_DAYS}", lambda v: 0 < v <= MAX_DAYS),
        # Partition bounds are bigint: a size far beyond any id keeps them in range.
        point_partition_size=_parsed("TRACKER_POINT_PARTITION_SIZE", 20_000, int,
                                     f"a whole number from 1 to {MAX_PARTITION_SIZE}",
                                     lambda v: 1 <= v <= MAX_PARTITION_SIZE),
        worker_metrics_port=_port("TRACKER_WORKER_METRICS_PORT"),
        worker_metrics_host=os.environ.get("TRACKER_WORKER_METRICS_HOST", "").strip() or "127.0.0.1",
        challenge_policy=_choice("TRACKER_CHALLENGE_POLICY", ("adaptive", "fixed"), "adaptive"),
        spark_master=os.environ.get("TRACKER_SPARK_MASTER") or None,
        spark_jars=os.environ.get("TRACKER_SPARK_JARS") or None,
        spark_driver_memory=_memory("TRACKER_SPARK_DRIVER_MEMORY", "2g"),
    )


def _parsed(name: str, default, convert, what: str | None = None, valid=None):
    """The variable as ``convert`` (int or float) reads it, or ``default`` when unset. A value
    it cannot read, with other than ASCII digits (``int`` takes "\u0663" as 3), not finite
    ("nan", "inf"), or that ``valid`` refuses, is refused, as not ``what`` (by default: a
    whole number, a number)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    what = what or ("a whole number" if convert is int else "a number")
    try:
        if not raw.isascii():
            raise ValueError(raw)
        value = convert(raw)
    except ValueError:
        value = None
    # A float's range check needs it finite; a whole number of any length compares as it is.
    if value is None or (isinstance(value, float) and not math.isfinite(value)) \
            or (valid is not None and not valid(value)):
        shown = repr(raw) if len(raw) <= 40 else repr(raw[:40]) + "..."
        raise SettingsError(f"{name} must be {what}, not {shown}")
    return value


def _database_url(name: str, default: str) -> str:
    """The database URL as SQLAlchemy parses it (the error leaves the URL out: it may hold a
    password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    value = os.environ.get(name) or default
    try:
        backend = make_url(value).get_backend_name()
    except (ArgumentError, ValueError):
        raise SettingsError(f"{name} is not a database URL (such as sqlite:///path/to/tracker.db or "
                            "postgresql+psycopg://user@host/tracker)") from None
    if backend not in ("sqlite", "postgresql"):
        raise SettingsError(f"{name} must name SQLite or PostgreSQL (sqlite:///..., postgresql+psycopg://...), "
                            f"not {backend}")
    return value


UNPARSED = "its address does not parse (a password holding / # ? @ or : must be percent-encoded)"


def _redis_url(name: str) -> str | None:
    """The Redis URL, or None when unset. Checked here, where a mistake can still stop the
    process: Redis's client takes ``/13x`` or ``/abc`` as database 0 without a word. The
    errors leave the URL out (it may hold a password)."""
    value = os.environ.get(name) or None
    if value is None:
        return None
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError as exc:
        # urllib's own message may quote part of a password (one holding "/" cuts the
        # address short): say what is wrong in words of our own.
        why = "its port is out of range 0-65535" if "out of range" in str(exc) else UNPARSED
        raise SettingsError(f"{name} is not a Redis URL: {why}") from None
    if "@" in parts.path + parts.query + parts.fragment:
        # A password holding "/", "?" or "#" ends the address early, and its rest (up to the
        # "@") lands in the path, query or fragment: nothing of it may be quoted.
        raise SettingsError(f"{name} is not a Redis URL: {UNPARSED}")
    if parts.scheme not in ("redis", "rediss", "unix"):
        found = f"{parts.scheme}://" if parts.scheme and "://" in value else "none"
        raise SettingsError(f"{name} must start with redis://, rediss:// or unix:// (its scheme: {found})")
    if port == 0:
        raise SettingsError(f"{name} has port 0")
    databases = [f"?db={db}" for db in urllib.parse.parse_qs(parts.query).get("db", [])]
    if parts.scheme == "unix":
        if not parts.path:
            raise SettingsError(f"{name} names no socket path (unix:///path/to/redis.sock)")
    elif parts.path.strip("/"):
        databases.append(parts.path)
    for db in databases:
        number = db.removeprefix("?db=").strip("/")
        if not (number.isascii() and number.isdigit()):
            raise SettingsError(f"{name} must name its database by number (such as /0 or ?db=0), not {db[:40]}")
    return value


def _port(name: str) -> int | None:
    """A TCP port from 1 to 65535, or None when unset."""
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 65535:
        raise SettingsError(f"{name} must be a port from 1 to 65535, not {raw!r}")
    return int(raw)


def _memory(name: str, default: str) -> str:
    """An amount of memory as the JVM's settings write it: ASCII digits and one of k, m, g, t."""
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"[0-9]+[kKmMgGtT]?", raw) or int(raw.rstrip("kKmMgGtT")) == 0:
        raise SettingsError(f"{name} must be an amount of memory such as 2g or 512m, not {raw!r}")
    return raw


def _choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    value = os.environ.get(name) or default
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value
