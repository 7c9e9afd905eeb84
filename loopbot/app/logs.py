"""JSON logs, one object a line, keyed by delivery id: stdlib logging and a small formatter (no
extra dependency for what is a dozen lines)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

# Fields a log call may add with `extra={...}`; anything else stays out of the line.
FIELDS = ("delivery", "event", "action", "repo", "installation", "outcome", "status", "loop", "job",
          "path", "reason", "seconds", "role")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        for name in FIELDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Every logger (uvicorn's too) writes JSON lines to stderr."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Requests are logged by the app with their delivery id; uvicorn's access lines would repeat them.
    logging.getLogger("uvicorn.access").disabled = True
