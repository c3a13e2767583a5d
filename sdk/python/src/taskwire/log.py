"""Log records to the worker's logs channel, as JSON lines.

Each record is one line {"timestamp", "level", "event", "logger", ...}: an
RFC 3339 UTC timestamp, the level as "debug", "info", "warning" or "error",
the formatted message, the logger's name, then the record's extra fields
(``log.info("read", extra={"rows": 3})``) and, when there is one, the
exception's traceback under "exception". An extra field named "timestamp",
"level", "event" or "logger" is written with a trailing underscore
("event_"), so it cannot hide the record's own field.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import socket
import sys
import threading
from typing import Any, Dict, Optional, TextIO, Union

from .protocol import rfc3339

__all__ = ["LogWriter", "JSONLineHandler", "level_name"]

# The attributes every LogRecord has; anything else came from extra=.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName",
}
_RESERVED = ("timestamp", "level", "event", "logger")


def level_name(levelno: int) -> str:
    """The wire name of a logging level."""
    if levelno < logging.INFO:
        return "debug"
    if levelno < logging.WARNING:
        return "info"
    if levelno < logging.ERROR:
        return "warning"
    return "error"


class LogWriter(object):
    """Writes lines to the logs socket, and to stderr (which the worker also
    captures) when there is none or once it fails."""

    def __init__(self, sock: Optional[socket.socket] = None, fallback: Optional[TextIO] = None) -> None:
        self.sock = sock
        self.error: Optional[OSError] = None
        self._fallback = fallback
        self._lock = threading.Lock()

    def write(self, data: Union[str, bytes]) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        with self._lock:
            if self.sock is not None and self.error is None:
                try:
                    self.sock.sendall(data)
                    return
                except OSError as e:
                    self.error = e
            stream = self._fallback or sys.stderr
            try:
                stream.write(data.decode("utf-8", "replace"))
                stream.flush()
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        with self._lock:
            if self.sock is not None:
                try:
                    self.sock.close()
                except OSError:
                    pass
                self.sock = None
                if self.error is None:
                    self.error = OSError("closed")


class JSONLineHandler(logging.Handler):
    """A logging.Handler writing records as the worker's JSON lines."""

    def __init__(self, writer: LogWriter, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.writer = writer

    def format_record(self, record: logging.LogRecord) -> Dict[str, Any]:
        """Return the record as the dict of its JSON line."""
        ts = _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc)
        rec: Dict[str, Any] = {
            "timestamp": rfc3339(ts),
            "level": level_name(record.levelno),
            "event": record.getMessage(),
            "logger": record.name,
        }
        for k, v in vars(record).items():
            if k in _RECORD_ATTRS or k.startswith("_"):
                continue
            if k in _RESERVED:
                k += "_"
            rec[k] = v
        if record.exc_info and record.exc_info[0] is not None:
            rec["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            rec["exception"] = record.exc_text
        if record.stack_info:
            rec["stack"] = record.stack_info
        return rec

    def formatException(self, ei: Any) -> str:
        return logging.Formatter().formatException(ei)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = json.dumps(self.format_record(record), ensure_ascii=False, default=_default,
                              separators=(",", ":"))
            self.writer.write(line + "\n")
        except Exception:
            self.handleError(record)


def _default(v: Any) -> Any:
    if isinstance(v, _dt.datetime):
        return rfc3339(v)
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8", "replace")
    if isinstance(v, (set, frozenset)):
        return list(v)
    return str(v)
