"""What a log line may hold: what a client sends can neither forge a line nor flood the log.

* ``OneLineFormatter`` (the CLI's): every record is one line. Control characters in its
  message (CR, LF, ESC, the other C0 and C1 controls, DEL, U+2028/U+2029, and bytes that
  were not text) are written escaped (``\\n``, ``\\x1b``, ``\\u2028``), whatever logged
  them: a request's path, query, headers or JSON values, a hook's URL, a library's message.
  The lines of a traceback that follow are indented, so only a record's first line starts at
  the margin (with its time stamp): no value can start a line of its own.
* ``url_for_log``: a URL without its query string and fragment (where webhook receivers
  put their tokens) or user info.
* ``ThrottledTracebacks``: a malformed HTTP request (aiohttp's ``HttpProcessingError``: a
  line too long, a bad header) is the client's fault: one INFO line, naming the kind, never
  its bytes (they may hold a token or a phone number). Any other exception keeps its full
  traceback at most once per ``every`` seconds per exception type; in between, one ERROR
  line naming the type.
"""
from __future__ import annotations

import logging
import re
import time
from urllib.parse import urlsplit

from aiohttp.http_exceptions import HttpProcessingError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# C0 (with TAB, CR, LF, ESC), DEL, C1, the Unicode line and paragraph separators, and the lone
# surrogates that stand for bytes which were not UTF-8 (aiohttp keeps them so)
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as its escape (``\\n``, ``\\x1b``)."""
    return _CONTROLS.sub(_escaped, text) if _CONTROLS.search(text) else text


class OneLineFormatter(logging.Formatter):
    """One line per record, whatever its message holds (see the module docstring)."""

    def __init__(self, fmt: str = FORMAT) -> None:
        super().__init__(fmt)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        first, newline, rest = super().format(record).partition("\n")
        if not newline:
            return first
        return first + "\n" + "\n".join("    " + escape_controls(line) for line in rest.split("\n"))


def url_for_log(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``: no query string, fragment or user info."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "(a URL that does not parse)"
    if ":" in host:
        host = f"[{host}]"
    return escape_controls(f"{parts.scheme}://{host}{port}{parts.path}")

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
