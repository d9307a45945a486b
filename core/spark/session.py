"""The Spark session this process uses, and how Spark reaches the database.

One session per process, made on first use and stopped at exit (a JVM takes seconds to
start). The executors run this interpreter (``PYSPARK_PYTHON``), so they import this
project's code; on a cluster, every node needs the same checkout and packages. Spark reads
the database through JDBC: PostgreSQL with Debian's ``libpostgresql-jdbc-java``, SQLite (a
local ``local[N]`` master only: the file is on this machine) with
``libxerial-sqlite-jdbc-java``, or the jars ``TRACKER_SPARK_JARS`` names.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import make_url

from core.config import Settings

DEBIAN_JARS = {"postgresql": "/usr/share/java/postgresql.jar", "sqlite": "/usr/share/java/sqlite-jdbc.jar"}
DRIVERS = {"postgresql": "org.postgresql.Driver", "sqlite": "org.sqlite.JDBC"}
INSTALL = ("pip install -r requirements-spark.txt, and Java 17 or newer with the JDBC drivers "
           "(apt-get install openjdk-17-jre-headless libpostgresql-jdbc-java libxerial-sqlite-jdbc-java)")

_lock = threading.Lock()
_session = None


class SparkUnavailable(RuntimeError):
    """Spark was asked for and cannot run here (no pyspark, no Java, no JDBC driver)."""


def missing() -> str | None:
    """Why Spark cannot start on this machine, or None when it can."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return f"pyspark is not installed ({INSTALL})"
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        return f"no Java runtime{f' at JAVA_HOME={home}' if home else ''} ({INSTALL})"
    return None


@dataclass(frozen=True)
class Jdbc:
    """Where Spark reads the database: a JDBC URL and the connection's properties."""

    url: str
    properties: dict
    dialect: str


def jdbc(database_url: str) -> Jdbc:
    """The JDBC form of a SQLAlchemy database URL (PostgreSQL or a SQLite file)."""
    url = make_url(database_url)
    dialect = url.get_backend_name()
    if dialect == "postgresql":
        props = {"driver": DRIVERS[dialect], "user": url.username or os.environ.get("PGUSER", "postgres")}
        if url.password:
            props["password"] = url.password
        if "host" in url.query or (url.host or "").startswith("/"):
            raise SparkUnavailable("Spark's JDBC driver reaches PostgreSQL over TCP: give a host name, not a socket")
        # The rest of the URL's options (sslmode, sslrootcert...) are the JDBC driver's too.
        for key, value in url.query.items():
            props[key] = value if isinstance(value, str) else value[-1]
        host = url.host or "localhost"
        host = f"[{host}]" if ":" in host else host
        port = f":{url.port}" if url.port else ""
        return Jdbc(f"jdbc:postgresql://{host}{port}/{quote(url.database or '', safe='')}", props, dialect)
    if dialect == "sqlite":
        if not url.database or url.database == ":memory:":
            raise SparkUnavailable("Spark cannot read an in-memory SQLite database: give it a file")
        return Jdbc(f"jdbc:sqlite:{Path(url.database).resolve()}", {"driver": DRIVERS[dialect]}, dialect)
    raise SparkUnavailable(f"Spark reads PostgreSQL or SQLite, not {dialect}")


def jars(settings: Settings) -> list[str]:
    if settings.spark_jars:
        return [j.strip() for j in settings.spark_jars.split(",") if j.strip()]
    return [path for path in DEBIAN_JARS.values() if Path(path).exists()]


def session(settings: Settings):
    """The process's Spark session on ``settings.spark_master`` (made on first use)."""
    global _session
    if not settings.spark_master:
        raise SparkUnavailable("TRACKER_SPARK_MASTER is not set")
    reason = missing()
    if reason:
        raise SparkUnavailable(reason)
    where = jdbc(settings.database_url)  # refuses what Spark cannot read before a JVM starts
    if not settings.spark_jars and not Path(DEBIAN_JARS[where.dialect]).exists():
        raise SparkUnavailable(f"the {where.dialect} JDBC driver is not at {DEBIAN_JARS[where.dialect]} ({INSTALL})")
    with _lock:
        if _session is not None:
            return _session
        # The executors run this interpreter, with this project's packages.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        # pyspark 4.3 warns on every pandas conversion that it was tested on pandas 2; what
        # these jobs convert (numbers, strings, lists of numbers) is checked by the tests.
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
        from pyspark.sql import SparkSession

        builder = (SparkSession.builder.master(settings.spark_master).appName("tracker-training")
                   .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                   .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                   .config("spark.sql.shuffle.partitions", "8")
                   .config("spark.driver.memory", settings.spark_driver_memory))
        if jar_list := jars(settings):
            builder = builder.config("spark.jars", ",".join(jar_list))
        if settings.spark_master.startswith("local"):
            # On one machine the driver and executors talk over loopback only.
            builder = (builder.config("spark.driver.host", "127.0.0.1")
                       .config("spark.driver.bindAddress", "127.0.0.1"))
        try:
            _session = builder.getOrCreate()
        except Exception as exc:  # noqa: BLE001 - the JVM would not start, or refused the master URL
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            raise SparkUnavailable(f"Spark did not start on {settings.spark_master!r}: "
                                   f"{lines[0][:300] if lines else type(exc).__name__}") from exc
        _session.sparkContext.setLogLevel("ERROR")
        atexit.register(stop)
        return _session


def stop() -> None:
    global _session
    with _lock:
        if _session is not None:
            _session.stop()
            _session = None


def read_table(spark, settings: Settings, query: str, partition_column: str | None = None,
               bounds: tuple[int, int] | None = None, partitions: int = 1, types: str | None = None):
    """A query's rows as a DataFrame read through JDBC; split on ``partition_column`` between
    ``bounds`` into ``partitions`` reads when given (each executor reads its own range).
    ``types``: Spark types of some columns ("t DOUBLE, at DOUBLE"): SQLite's driver reports
    a FLOAT column as single precision, which would round a Unix time to minutes."""
    where = jdbc(settings.database_url)
    reader = spark.read.format("jdbc").option("url", where.url)
    if types:
        reader = reader.option("customSchema", types)
    for key, value in where.properties.items():
        reader = reader.option(key, value)
    reader = reader.option("dbtable", f"({query}) AS q")
    if partition_column and bounds and partitions > 1 and bounds[1] > bounds[0]:
        reader = (reader.option("partitionColumn", partition_column).option("lowerBound", str(bounds[0]))
                  .option("upperBound", str(bounds[1] + 1)).option("numPartitions", str(partitions)))
    return reader.load()
