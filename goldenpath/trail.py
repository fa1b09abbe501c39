"""The debug trail: every API call, probe and decision as a Python ``logging`` record.

Loggers are named ``goldenpath.<area>`` (``goldenpath.gcp.run``, ``goldenpath.probes``,
``goldenpath.remediation``, ``goldenpath.observe``). Reads, polls, retries and probe details are
DEBUG; mutations, decisions and phase timings are INFO; refusals and failures are WARNING.

Secrets never reach a handler: every ``goldenpath.*`` logger obtained through :func:`logger` carries
a filter that redacts the record's arguments (environment values but the target's required ones,
credential-named keys) and then scrubs the formatted text (Authorization headers, bearer tokens,
``password=…``, and the values registered with :func:`hide`) before any handler sees it.

Two ways to read it:
- :func:`capture` collects the trail of a block as text (for an Allure attachment per phase);
- :func:`live` makes ``-v`` show it live through pytest's own logging plugin.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from goldenpath.redact import redact_secrets, scrub_text

ROOT = "goldenpath"
# Values known to be secret in this process (the test account's password, a session token): masked
# in every record, whatever shape they appear in. Only ever added to: a secret stays one.
_hidden: set[str] = set()
_hidden_lock = threading.Lock()


def hide(*values: str) -> None:
    """Mask these values in every later record of the trail (empty values are ignored)."""
    with _hidden_lock:
        _hidden.update(v for v in values if v and len(v) >= 4)  # a 1–3 character "secret" would mask everything


class Redacting(logging.Filter):
    """Redact a record before any handler formats it. ``extra={"keep_env": names}`` shows those
    environment variables' values (the target's required_env, which the report must show)."""

    def filter(self, record: logging.LogRecord) -> bool:
        keep: Iterable[str] = getattr(record, "keep_env", ()) or ()
        if isinstance(record.args, dict):
            record.args = redact_secrets(record.args, keep)
        elif record.args:
            record.args = tuple(redact_secrets(a, keep) if isinstance(a, (dict, list, tuple)) else a
                                for a in record.args)
        try:
            text = record.getMessage()
        except (TypeError, ValueError):  # a malformed call: keep the template and the arguments apart
            text = f"{record.msg} {record.args!r}"
        with _hidden_lock:
            hidden = tuple(_hidden)
        record.msg, record.args = scrub_text(text, hidden), None
        return True


_REDACTING = Redacting()


def logger(area: str) -> logging.Logger:
    """The ``goldenpath.<area>`` logger, redacting. Use it (not logging.getLogger) for the trail."""
    log = logging.getLogger(f"{ROOT}.{area}")
    if _REDACTING not in log.filters:
        log.addFilter(_REDACTING)
    return log


# ---- capturing a block --------------------------------------------------------------------------

class RelativeFormatter(logging.Formatter):
    """``+  1.234s DEBUG    goldenpath.gcp.run  message``: seconds since the capture began."""

    def __init__(self, start: float) -> None:
        super().__init__()
        self.start = start

    def format(self, record: logging.LogRecord) -> str:
        return f"+{record.created - self.start:8.3f}s {record.levelname:<8} {record.name}  {record.getMessage()}"


class Trail:
    """What one :func:`capture` block logged."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def add(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines) + ("\n" if self.lines else "")


class _Buffer(logging.Handler):
    def __init__(self, trail: Trail) -> None:
        super().__init__(logging.DEBUG)
        self.trail = trail
        self.setFormatter(RelativeFormatter(trail.start))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.trail.add(self.format(record))
        except Exception:  # a trail must never break the run it describes
            self.handleError(record)


class _Forward(logging.Handler):
    """While a capture raises ``goldenpath`` to DEBUG, pass on to the root logger's handlers (pytest's
    live log, report sections, caplog) only what the root logger would have let through: a capture
    must not change what the terminal shows."""

    def emit(self, record: logging.LogRecord) -> None:
        root = logging.getLogger()
        if record.levelno < root.getEffectiveLevel():
            return
        for handler in root.handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


_open_lock = threading.Lock()
_open_count = 0
_saved: tuple[int, bool] = (logging.NOTSET, True)
_forward = _Forward()


@contextmanager
def capture() -> Iterator[Trail]:
    """Collect every ``goldenpath.*`` record (DEBUG and up) logged in this block, by any thread, as
    :meth:`Trail.text`. Captures may nest or overlap; each gets what was logged while it was open."""
    global _open_count, _saved
    trail = Trail(time.time())
    handler = _Buffer(trail)
    root = logging.getLogger(ROOT)
    with _open_lock:
        if _open_count == 0:
            _saved = (root.level, root.propagate)
            root.setLevel(logging.DEBUG)
            root.propagate = False
            root.addHandler(_forward)
        _open_count += 1
        root.addHandler(handler)
    try:
        yield trail
    finally:
        with _open_lock:
            root.removeHandler(handler)
            _open_count -= 1
            if _open_count == 0:
                root.removeHandler(_forward)
                root.setLevel(_saved[0])
                root.propagate = _saved[1]


# ---- live in the terminal -----------------------------------------------------------------------

# Third-party loggers `-v` keeps at WARNING (see live()).
QUIET_UNDER_V = ("httpx", "httpcore", "urllib3", "google", "googleapiclient", "grpc", "asyncio", "hpack",
                 "websockets", "trustme", "uvicorn")


def live(config: Any) -> str | None:
    """Call from a (not trylast) ``pytest_configure``: with ``-v`` and no log level of the user's own,
    show the trail live: ``-v`` at INFO (calls that change something, probes, decisions, timings),
    ``-vv`` at DEBUG (every read, poll and retry). Returns the level set, or None.

    pytest's logging plugin is registered in its own ``trylast`` pytest_configure and reads
    ``config.option.log_cli_level`` then (``_pytest/logging.py``: ``LoggingPlugin.__init__`` and
    ``_log_cli_enabled``), so setting the option here enables live logging exactly as
    ``--log-cli-level`` would."""
    option = config.option
    if getattr(option, "log_cli_level", None) is not None or config.get_verbosity() < 1:
        return None
    if config.getini("log_cli"):  # the user turned live logs on in the ini file: their level stands
        return None
    level = config.getini("log_cli_level") or ("DEBUG" if config.get_verbosity() >= 2 else "INFO")
    option.log_cli_level = level
    # Live logs are the root logger's, so every library's records would show too: httpx logs each
    # of a burst's twenty requests at INFO, httpcore every byte at DEBUG. The trail already has the
    # calls and probes, with what the operator needs; the libraries speak only when something is wrong.
    # (An explicit --log-cli-level is the user's choice, and gets everything.)
    for name in QUIET_UNDER_V:
        logging.getLogger(name).setLevel(logging.WARNING)
    return str(level)


def seconds(value: float) -> str:
    """A duration in the trail: milliseconds are what tell a slow call from a fast one."""
    return f"{value:.3f} s"
