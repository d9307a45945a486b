"""The anomaly model's features of stored activities, computed by a Spark job.

The job reads what scoring reads, where it lies: the points of activities still in the
database through JDBC (split by activity id, one range per task), the points of archived
activities from their Parquet files in the cold tier (each file named by its activity's
row, read on the executors with pyarrow as ``core.storage.cold`` reads it), and the
activities' pause and resume events through JDBC. Points and events are
grouped by activity on the executors, which take out the points logged while paused and
call ``core.anomaly.features.track_features``, the function scoring calls, so each
activity's features are the ones the single-machine path computes from
``core.activities.summary.recorded_track`` (to rounding).

The archive is wherever ``TRACKER_ARCHIVE_URL`` says (a folder every executor sees, or
object storage by URL), as for the rest of the application.
"""

from __future__ import annotations

import numpy as np

from core.anomaly.features import MODEL_FEATURES
from core.config import Settings
from core.spark.session import read_table
from core.storage import cold

SCHEMA = "activity_id long, sport string, features array<double>"
POINTS = ("seq", "t", "lat", "lon", "ele", "acc", "hr", "cad")
POINT_SCHEMA = "activity_id long, seq long, " + ", ".join(f"{c} double" for c in POINTS[1:])


def _archived_points(settings: Settings):
    """For ``mapInPandas``: the points of the archived activities in each batch of
    (activity_id, user_id, cold_file) rows, read on the executor with pyarrow as
    ``core.storage.cold.read`` reads them (any filesystem the archive URL names). A file
    that is gone (swept, or its athlete erased meanwhile) gives no points, and its
    activity no row."""

    def read(batches):
        import logging

        import pandas as pd

        archive = cold.open_archive(settings)
        for batch in batches:
            for activity_id, user_id, name in zip(batch["activity_id"], batch["user_id"], batch["cold_file"]):
                try:
                    rows = cold.read(archive, int(user_id), str(name))
                except cold.ArchiveFileError as exc:
                    logging.getLogger(__name__).warning("activity %s: %s", activity_id, exc)
                    continue
                frame = pd.DataFrame(rows, columns=list(POINTS))
                frame.insert(0, "activity_id", int(activity_id))
                frame["seq"] = frame["seq"].astype("int64")
                yield frame

    return read


def _selection(activity_ids: list[int] | None, found_fine: bool) -> str:
    """The SQL condition on ``a`` (activities) for the activities wanted."""
    from core.anomaly.flags import FOUND_FINE

    where = ["a.status = 'completed'"]
    if activity_ids is not None:
        where.append(f"a.id IN ({', '.join(str(int(i)) for i in activity_ids) or 'NULL'})")
    if found_fine:
        statuses = ", ".join(f"'{s}'" for s in FOUND_FINE)
        where.append(f"a.id IN (SELECT f.activity_id FROM activity_flags f WHERE f.status IN ({statuses}))")
    return " AND ".join(where)


def features_of(points, events, sport: str) -> np.ndarray | None:
    """One activity's model row from its stored points and its (command, at) events, with
    the features scoring computes; None when it gives none (``training_row``)."""
    from core.activities.summary import intervals_of, without_paused
    from core.anomaly.features import track_features
    from core.anomaly.training import training_row
    from core.tracks.track import Track

    points = points.sort_values(["t", "seq"], kind="stable")
    cols = [np.ascontiguousarray(points[c].to_numpy(dtype=np.float64, na_value=np.nan)) for c in POINTS[1:]]
    track = Track(*cols, sport=sport)
    order = events.sort_values(["at", "id"], kind="stable")
    intervals = intervals_of(list(zip(order["command"], order["at"].astype(float))))
    return training_row(track_features(without_paused(track, intervals), sport, pauses=intervals))


def _per_activity(points, events):
    import pandas as pd

    none = pd.DataFrame({"activity_id": pd.Series([], dtype="int64"), "sport": pd.Series([], dtype=object),
                         "features": pd.Series([], dtype=object)})
    if points.empty:
        return none
    sport = str(points["sport"].iloc[0])
    row = features_of(points, events, sport)
    if row is None:
        return none
    return pd.DataFrame({"activity_id": [int(points["activity_id"].iloc[0])], "sport": [sport],
                         "features": [[float(x) for x in row]]})


def extract(spark, settings: Settings, activity_ids: list[int] | None = None,
            found_fine: bool = False) -> dict[int, tuple[str, np.ndarray]]:
    """Each completed activity's (sport, feature row), computed on Spark: those of
    ``activity_ids``, or all, or (``found_fine``) those scoring found fine or a moderator
    cleared, which the model learns from."""
    from pyspark.sql import functions as F

    chosen = _selection(activity_ids, found_fine)
    activities = read_table(spark, settings, "SELECT a.id AS activity_id, a.user_id, a.sport, a.points_tier, "
                                             f"a.cold_file FROM activities a WHERE {chosen}",
                            types="activity_id BIGINT, user_id BIGINT").cache()
    bounds = activities.agg(F.min("activity_id"), F.max("activity_id")).first()
    if bounds[0] is None:
        activities.unpersist()
        return {}
    tasks = max(1, spark.sparkContext.defaultParallelism * 2)
    columns = ", ".join(f"p.{c}" for c in POINTS)
    hot_ids = activities.where("points_tier = 'hot'").select("activity_id")
    hot = read_table(spark, settings,
                     f"SELECT p.activity_id, {columns} FROM route_points p JOIN activities a ON a.id = p.activity_id "
                     f"WHERE a.points_tier = 'hot' AND {chosen}", "activity_id", (bounds[0], bounds[1]), tasks,
                     "activity_id BIGINT, seq BIGINT, " + ", ".join(f"{c} DOUBLE" for c in POINTS[1:]))
    # Where each activity's points are is read once (``activities`` is cached): one that
    # moves between the tiers while the job runs is read from one of them, never from both.
    points = hot.join(hot_ids, "activity_id")
    archived = activities.where("points_tier = 'cold' AND cold_file IS NOT NULL").select(
        "activity_id", "user_id", "cold_file")
    files = archived.repartition(tasks).mapInPandas(_archived_points(settings), POINT_SCHEMA)
    points = points.unionByName(files)
    points = points.join(activities.select("activity_id", "sport"), "activity_id")
    events = read_table(spark, settings,
                        "SELECT e.id, e.activity_id, e.command, e.at FROM activity_events e "
                        f"JOIN activities a ON a.id = e.activity_id WHERE {chosen}",
                        "activity_id", (bounds[0], bounds[1]), tasks, "id BIGINT, activity_id BIGINT, at DOUBLE")
    result = (points.groupBy("activity_id").cogroup(events.groupBy("activity_id"))
              .applyInPandas(_per_activity, SCHEMA).toPandas())
    activities.unpersist()
    return {int(a): (str(s), np.array(f, dtype=float))
            for a, s, f in zip(result["activity_id"], result["sport"], result["features"])}


def database_rows(spark, settings: Settings) -> dict[str, list[np.ndarray]]:
    """Feature rows per sport of every activity the model learns from (``extract`` with
    ``found_fine``), in activity order: what ``core.anomaly.registry`` reads from the stored
    verdicts without Spark, for every such activity rather than the latest few thousand."""
    from core.activities.tables import SPORTS

    out: dict[str, list[np.ndarray]] = {sport: [] for sport in SPORTS}
    for _, (sport, row) in sorted(extract(spark, settings, found_fine=True).items()):
        if sport in out and row.size == len(MODEL_FEATURES):
            out[sport].append(row)
    return out


def spark_rows(settings: Settings):
    """For ``core.anomaly.registry.train``: the database rows computed on Spark when
    ``settings.spark_master`` is set, else None (the stored verdicts' features)."""
    if not settings.spark_master:
        return None

    def rows():
        from core.spark.session import session

        return database_rows(session(settings), settings), f"spark ({settings.spark_master})"

    return rows
