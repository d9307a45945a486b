"""The ingest server's metrics, for Prometheus: served at ``/metrics`` on the server's own
port (one registry per server, so several in one process keep theirs apart).

What an operator watches first: connections, messages and points per second (rates of the
counters), how long a device waits for its ack, how large and how long the group commits
are, how often the database was busy, connections closed for flooding, and the batches
waiting for the group commit. ``docs/monitoring.md`` has a scrape configuration and alerts.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Seconds: an ack is a millisecond or two on an idle machine, up to seconds under a busy database.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class IngestMetrics:
    """The counters, gauges and histograms of one ingest server."""

    def __init__(self, queue_depth, unsettled) -> None:
        """``queue_depth`` and ``unsettled``: callables giving the batches waiting for the group
        commit and those not yet acknowledged, read at each scrape."""
        r = self.registry = CollectorRegistry()
        self.connections = Gauge("tracker_ingest_connections", "Open device connections", registry=r)
        self.messages = Counter("tracker_ingest_messages", "Messages received, by kind", ["kind"], registry=r)
        self.points = Counter("tracker_ingest_points", "Points stored (resent ones already stored not counted)",
                              registry=r)
        self.ack_seconds = Histogram("tracker_ingest_ack_seconds", "From a batch of points queued to its ack sent",
                                     buckets=ACK_BUCKETS, registry=r)
        self.commit_batches = Histogram("tracker_ingest_commit_batches", "Batches written per group commit",
                                        buckets=GROUP_BUCKETS, registry=r)
        self.commit_seconds = Histogram("tracker_ingest_commit_seconds", "Duration of a group commit's transaction",
                                        buckets=ACK_BUCKETS, registry=r)
        self.busy_retries = Counter("tracker_ingest_busy_retries",
                                    "Commits and store calls tried again because the database was busy", registry=r)
        self.rate_limit_closes = Counter("tracker_ingest_rate_limit_closes", "Connections closed for a message flood",
                                         registry=r)
        self.rate_limited = Counter("tracker_ingest_rate_limited", "Messages refused by the rate limit", registry=r)
        Gauge("tracker_ingest_queue_depth", "Batches waiting for the group commit",
              registry=r).set_function(queue_depth)
        Gauge("tracker_ingest_unacknowledged", "Batches received and not yet acknowledged",
              registry=r).set_function(unsettled)

    def render(self) -> bytes:
        """The metrics in Prometheus's text format."""
        return generate_latest(self.registry)
