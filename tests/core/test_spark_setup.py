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


@pytest.mark.parametrize("value", ["lots", "0", "2gb", "-1g", "\u0662g", "1.5g"])
def test_a_driver_memory_the_jvm_cannot_read_is_refused(monkeypatch, value):
    monkeypatch.setenv("TRACKER_SPARK_DRIVER_MEMORY", value)
    with pytest.raises(ValueError, match="^TRACKER_SPARK_DRIVER_MEMORY must be an amount of memory such as 2g"):
        load_settings()


def test_a_driver_memory_is_read(monkeypatch):
    monkeypatch.delenv("TRACKER_SPARK_DRIVER_MEMORY", raising=False)
    assert load_settings().spark_driver_memory == "2g"
    monkeypatch.setenv("TRACKER_SPARK_DRIVER_MEMORY", "512m")
    assert load_settings().spark_driver_memory == "512m"


def test_a_jvm_that_does_not_start_is_spark_unavailable(tmp_path):
    """A driver memory no machine has: the JVM exits at once, and the session says Spark
    cannot run (the jobs' fallback catches that) instead of pyspark's own error."""
    import subprocess
    import sys
    from pathlib import Path

    from core.spark.session import DEBIAN_JARS
    from tests.conftest import need

    reason = missing()
    need(reason is None, f"Spark cannot run here: {reason}")
    need(Path(DEBIAN_JARS["sqlite"]).exists(), f"the SQLite JDBC driver is not at {DEBIAN_JARS['sqlite']}")
    code = ("from dataclasses import replace\n"
            "from core.config import load_settings\n"
            "from core.spark.session import SparkUnavailable, session\n"
            "try:\n"
            f"    session(replace(load_settings(), spark_master='local[1]', database_url='sqlite:///{tmp_path}/s.db',"
            " spark_driver_memory='9999999g'))\n"
            "except SparkUnavailable as exc:\n"
            "    print('unavailable:', exc)\n")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # The JVM writes its own complaint to standard output first.
    assert done.stdout.strip().splitlines()[-1].startswith("unavailable: Spark did not start on 'local[1]': "), \
        done.stdout
