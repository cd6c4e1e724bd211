"""Tracebacks that a client can trigger at will must not flood the log.

A malformed HTTP request (aiohttp's ``HttpProcessingError``: a line too long, a bad header)
is the client's fault: one INFO line, naming the kind, never its bytes (they may hold a
token or a phone number). Any other exception keeps its full traceback at most once per
``every`` seconds per exception type; in between, one ERROR line naming the type.
"""
from __future__ import annotations

import logging
import time

from aiohttp.http_exceptions import HttpProcessingError

LOGGERS = ("c2c_ami.api", "aiohttp.server", "aiohttp.web")


class ThrottledTracebacks(logging.Filter):
    def __init__(self, every: float = 60.0) -> None:
        super().__init__()
        self.every = every
        self._last: dict[type, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        if isinstance(exc, HttpProcessingError):
            self._one_line(record, f"malformed HTTP request ({type(exc).__name__}, {exc.code})")
            record.levelno, record.levelname = logging.INFO, "INFO"
            return True
        now = time.monotonic()
        last = self._last.get(type(exc))
        if last is None or now - last >= self.every:
            self._last[type(exc)] = now
            return True
        self._one_line(record, f"{type(exc).__name__} (its traceback is logged at most once "
                               f"per {self.every:g} s)")
        return True

    @staticmethod
    def _one_line(record: logging.LogRecord, what: str) -> None:
        record.msg, record.args = f"{record.getMessage()}: {what}", ()
        record.exc_info, record.exc_text = None, None


def throttle_tracebacks(every: float = 60.0) -> None:
    """Install the filter on the loggers that log request errors (once per process)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ThrottledTracebacks) for f in logger.filters):
            logger.addFilter(ThrottledTracebacks(every))
