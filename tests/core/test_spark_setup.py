"""Training on Spark, where Spark cannot run or is misconfigured: how the database's URL
becomes JDBC's, and the jobs' fallback to this process. No Spark, Java or JVM needed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.config import load_settings
from core.spark.session import SparkUnavailable, jdbc, missing, session


def test_jdbc_urls_keep_host_port_database_and_options():
    pg = jdbc("postgresql+psycopg://ann:p%40ss@db.example:5433/track%3Fers?sslmode=require")
    assert pg.url == "jdbc:postgresql://db.example:5433/track%3Fers"
    assert pg.properties == {"driver": "org.postgresql.Driver", "user": "ann", "password": "p@ss",
                             "sslmode": "require"}
    assert jdbc("postgresql+psycopg://u@[::1]:5432/db").url == "jdbc:postgresql://[::1]:5432/db"
    lite = jdbc("sqlite:///data/tracker.db")
    assert lite.url.startswith("jdbc:sqlite:/") and lite.url.endswith("/data/tracker.db")


@pytest.mark.parametrize("url, reason", [
    ("sqlite://", "in-memory"),
    ("postgresql+psycopg://u@/db?host=/var/run/postgresql", "socket"),
    ("mysql://u@h/db", "PostgreSQL or SQLite"),
])
def test_what_spark_cannot_read_is_refused_with_the_reason(url, reason):
    with pytest.raises(SparkUnavailable, match=reason):
        jdbc(url)


def test_a_java_home_without_java_is_missing(monkeypatch, tmp_path):
    pytest.importorskip("pyspark", reason="pyspark is installed by make setup-spark")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    assert "no Java runtime" in missing()


def test_unset_master_means_no_spark():
    with pytest.raises(SparkUnavailable, match="TRACKER_SPARK_MASTER"):
        session(replace(load_settings(), spark_master=None))


def test_the_jobs_fall_back_to_this_process_when_spark_fails(tmp_path):
    """A Spark that cannot start (here: an in-memory database it cannot read) leaves the
    worker training as it does without Spark, once, saying why; it never loops."""
    from sqlalchemy.orm import sessionmaker

    from core.anomaly.registry import train
    from core.jobs.recommendations import train_recommendations
    from core.spark.features import spark_rows
    from core.storage.engine import make_engine
    from core.storage.schema import migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'fallback.db'}")
    migrate(engine)
    Session = sessionmaker(engine)
    settings = replace(load_settings(), database_url="sqlite://", spark_master="local[1]", data_dir=tmp_path,
                       shared_tracks_dir=None)
    done = train_recommendations(Session, settings)["recommendations"]
    assert "in-memory" in done["spark_failed"]
    model = train(settings, Session, database_rows=spark_rows(settings))
    assert model.meta["sources"]["features_on"].startswith("stored verdicts: Spark failed")
    engine.dispose()
