"""Training on Spark (``local[2]``) against the single-machine path on the same data: the
anomaly features of stored activities (database rows and the Parquet cold tier, pauses
taken out) to rounding, the model file both write, and the route suggestions of ALS on
implicit feedback against Surprise's.

These need pyspark, Java and Debian's JDBC drivers (``.ci/run`` installs them); without
them they skip, and under CI=true they fail."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from core.accounts.users import create_user
from core.activities.imports import record_track
from core.activities.tables import Activity, ActivityEvent
from core.anomaly.features import MODEL_FEATURES, track_features, vector
from core.anomaly.model import PopulationModel
from core.anomaly.registry import MODEL_FILE, _database_rows, model_dir
from core.anomaly.registry import train as train_anomaly
from core.anomaly.scoring import score_pending
from core.anomaly.training import stored_row
from core.config import load_settings
from core.spark.session import DEBIAN_JARS, missing
from core.storage import tiers
from core.storage.points import archive, stored_track
from core.tracks.formats import outdoor_recordings
from tests.conftest import database_of_its_own, need
from tests.core.recommend.test_service import db, town  # noqa: F401 - the town the service is tested on

TOP = 10
# The hybrid over ALS and over Surprise's chosen model rank the same routes near the top:
# on average at least this share of an athlete's top 10 is in both lists.
TOP_OVERLAP = 0.5
# And the ALS path finds the next route an athlete did at least as often, within this (ALS
# alone must also beat the popular routes nearby by this much).
HIT_RATE_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def spark():
    reason = missing()
    need(reason is None, f"Spark cannot run here: {reason}")
    absent = [j for j in DEBIAN_JARS.values() if not Path(j).exists()]
    need(not absent, f"the JDBC drivers are not installed: {', '.join(absent)} "
                     "(apt-get install libpostgresql-jdbc-java libxerial-sqlite-jdbc-java)")
    from core.spark.session import session

    return session(replace(load_settings(), spark_master="local[2]"))


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TRACKER_ARCHIVE_URL", raising=False)
    return tmp_path / "data"


def _settings(Session, **kw):
    url = Session.kw["bind"].url.render_as_string(hide_password=False)
    return replace(load_settings(), database_url=url, **{"spark_master": "local[2]", **kw})


def _stored(Session, shared_tracks, count=6) -> list[int]:
    """Real recordings stored as completed activities, one paused half-way (points logged
    while paused are stored too), one with a pause never resumed."""
    recordings = outdoor_recordings(shared_tracks)[:count]
    ids = []
    with Session() as s, s.begin():
        user = create_user(s, "spark_athlete")
        for name, track in recordings:
            ids.append(record_track(s, user, track, title=name, source="demo").id)
        for k, at in ((0, 0.5), (1, 0.8)):
            a = s.get(Activity, ids[k])
            t0, t1 = recordings[k][1].t[0], recordings[k][1].t[-1]
            pause = t0 + at * (t1 - t0)
            s.add(ActivityEvent(activity_id=a.id, user_id=a.user_id, command="pause", status="paused", at=pause))
            if k == 0:
                s.add(ActivityEvent(activity_id=a.id, user_id=a.user_id, command="resume", status="recording", at=pause + 240.0))
    return ids


def _single_machine(Session, ids) -> dict[int, np.ndarray]:
    with Session() as s:
        rows = {activity_id: stored_row(s, s.get(Activity, activity_id)) for activity_id in ids}
    return {k: row for k, row in rows.items() if row is not None}


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_spark_computes_the_features_scoring_computes_from_both_tiers(spark, kind, tmp_path, data_dir,
                                                                       shared_tracks):
    from core.spark.features import extract

    with database_of_its_own(kind, tmp_path, "spark_features") as Session:
        ids = _stored(Session, shared_tracks)
        for activity_id in ids[::2]:  # half of them archived, the paused one among them
            assert tiers.archive_activity(Session, archive(), activity_id) > 0
        with Session() as s:
            tiers_of = dict(s.execute(select(Activity.id, Activity.points_tier)).all())
        assert sorted(tiers_of.values()).count("cold") == len(ids[::2])
        expected = _single_machine(Session, ids)
        got = extract(spark, _settings(Session), ids)
        with Session() as s:  # the paused activity, with the points logged while paused
            a = s.get(Activity, ids[0])
            unpaused = vector(track_features(stored_track(s, a), a.sport))
    assert set(got) == set(expected) and len(got) >= 4
    for activity_id, row in expected.items():
        sport, spark_row = got[activity_id]
        assert sport == "run" or sport == "ride"
        np.testing.assert_allclose(spark_row, row, rtol=1e-9, atol=1e-9, equal_nan=True,
                                   err_msg=f"activity {activity_id} ({tiers_of[activity_id]})")
    # The pause was taken out: with the points logged while paused, the row differs.
    assert not np.allclose(unpaused, got[ids[0]][1], equal_nan=True)


def test_the_model_trained_on_spark_is_the_same_file_with_every_cleared_activity(spark, tmp_path, data_dir,
                                                                                  shared_tracks):
    from core.spark.features import database_rows, spark_rows

    with database_of_its_own("sqlite", tmp_path, "spark_model") as Session:
        ids = _stored(Session, shared_tracks, count=8)
        tiers.archive_activity(Session, archive(), ids[1])
        score_pending(Session, None, 0.5)
        settings = _settings(Session, shared_tracks_dir=None, data_dir=data_dir)
        rows = database_rows(spark, settings)
        cleared = _single_machine(Session, ids)
        assert sum(len(v) for v in rows.values()) == len(cleared)
        train_anomaly(settings, Session, database_rows=spark_rows(settings))
        single = train_anomaly(replace(settings, data_dir=tmp_path / "single"), Session)
        with Session() as s:
            stored = _database_rows(s)
    path = model_dir(settings) / MODEL_FILE
    assert path.exists()
    loaded = PopulationModel.load(path)
    assert loaded.meta["sources"]["features_on"] == "spark (local[2])"
    assert loaded.meta["sources"]["database_activities"] == single.meta["sources"]["database_activities"]
    # The rows are the stored verdicts' features, which the single-machine path reads.
    for sport, sport_rows in rows.items():
        mine = sorted(map(tuple, np.round(sport_rows, 6).tolist()))
        theirs = sorted(map(tuple, np.round(stored[sport], 6).tolist()))
        np.testing.assert_allclose(np.array(mine, dtype=float).reshape(-1, len(MODEL_FEATURES)),
                                   np.array(theirs, dtype=float).reshape(-1, len(MODEL_FEATURES)), atol=1e-6, equal_nan=True)


def _overlap(a: list[int], b: list[int]) -> float:
    return len(set(a) & set(b)) / max(1, min(len(a), len(b)))


def test_als_on_spark_ranks_like_the_single_machine_path(spark):
    """The generated population the recommender is evaluated on: the hybrid over Spark's
    ALS finds athletes' next routes as well as the hybrid over Surprise (within
    ``HIT_RATE_TOLERANCE``), and their top 10s mostly agree (``TOP_OVERLAP``)."""
    from core.recommend.evaluation import K, _profiles, run_generated, split
    from core.recommend.model import Recommender
    from core.recommend.population import T0, WEEK_S, generate
    from core.spark.recommend import als

    factors = als(spark)
    out = run_generated(seed=3, athletes=600, routes=800, factors=factors)
    table = out["table"]
    hit = {m: table[m]["warm"][f"hit_rate@{K}"] for m in table}
    assert hit["hybrid_als"] >= hit["hybrid"] - HIT_RATE_TOLERANCE, hit
    # ALS alone is a model of its own: better than the popular routes nearby (which an ALS
    # giving nothing would fall back to) and than Surprise's SVD on the same events.
    assert hit["als"] >= hit["popular"] + HIT_RATE_TOLERANCE, hit
    assert hit["als"] >= hit["svd"] - HIT_RATE_TOLERANCE, hit
    # Top-10 agreement on the same training data, athlete by athlete.
    pop = generate(seed=3, athletes=600, routes=800)
    test_week = max(a.joins_week for a in pop.athletes.values())
    sp = split(pop.events, T0 + test_week * WEEK_S)
    sports = {u: a.sport for u, a in pop.athletes.items()}
    starts = {u: a.home for u, a in pop.athletes.items()}
    follows = {u: set(a.friends) for u, a in pop.athletes.items()}
    chosen = out["chosen"]
    single = Recommender(pop.catalogue, sp.train, collaborative=chosen["collaborative"], blend=chosen["blend"],
                         follows=follows)
    on_spark = Recommender(pop.catalogue, sp.train, collaborative="als", blend=chosen["als"]["blend"],
                           follows=follows, factors=factors)
    profiles = _profiles(sp.warm, sports, sp.train, pop.catalogue, starts, {})
    some = next(iter(profiles.values()))
    assert np.abs(on_spark.predicted(some.user, pop.catalogue.ids)).max() > 0, "ALS's factors are empty"
    overlaps = [_overlap([x.route for x in single.rank(p, TOP)], [x.route for x in on_spark.rank(p, TOP)])
                for p in itertools.islice(profiles.values(), 300)]
    assert np.mean(overlaps) >= TOP_OVERLAP, np.mean(overlaps)


def test_training_on_spark_writes_the_lists_the_single_machine_path_writes(spark, town):  # noqa: F811
    from core.jobs.recommendations import train_recommendations
    from core.recommend.tables import RecommenderState, RouteSuggestion

    def lists():
        with town() as s:
            rows = s.execute(select(RouteSuggestion.user_id, RouteSuggestion.route_id)
                             .order_by(RouteSuggestion.user_id, RouteSuggestion.rank)).all()
            state = s.get(RecommenderState, "routes").value
        out = {}
        for u, r in rows:
            out.setdefault(u, []).append(r)
        return out, state

    train_recommendations(town, _settings(town, spark_master=None))
    single, single_state = lists()
    done = train_recommendations(town, _settings(town))["recommendations"]
    on_spark, state = lists()
    assert done["collaborative"] == "als" and state["collaborative"] == "als"
    assert single_state["collaborative"] != "als"
    assert set(on_spark) == set(single) and single
    for user, routes in single.items():
        assert set(on_spark[user]) == set(routes), "the same candidates, each athlete's routes not yet done"


def test_a_missing_archive_file_costs_its_activity_only(spark, tmp_path, data_dir, shared_tracks):
    """A file swept or erased meanwhile: that activity gives no row, the others theirs."""
    from core.spark.features import extract

    with database_of_its_own("sqlite", tmp_path, "spark_missing") as Session:
        ids = _stored(Session, shared_tracks, count=3)
        for activity_id in ids[:2]:
            tiers.archive_activity(Session, archive(), activity_id)
        with Session() as s:
            a = s.get(Activity, ids[0])
            (Path(archive().path(a.user_id, a.cold_file))).unlink()
        expected = _single_machine(Session, ids[1:])
        got = extract(spark, _settings(Session), ids)
    assert set(got) == set(expected) and ids[0] not in got
