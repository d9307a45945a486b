"""The ingest server's log: one JSON object per line on stderr."""

from __future__ import annotations

import json
import logging
import sys


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with whatever context the call passed in ``extra``."""

    FIELDS = ("user", "activity_id", "code", "stored", "duplicates", "batch", "status", "remote", "speed_kmh")

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "event": record.getMessage()}
        for name in self.FIELDS:
            if hasattr(record, name):
                out[name] = getattr(record, name)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("realtime")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
