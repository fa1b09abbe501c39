"""One remediation at a time per target: a lock file naming its holder.

Taken before a run's first mutation, released when the run ends. The file records who holds it
(identity, run id, host, pid, start time, journal), so a refusal can name the holder. A lock whose
process is gone is *stale*: it is reported, and taken over only when the operator says so
(``--break-lock``), or by ``--recover`` for a run it is recovering; either is journaled.

Where: for the twin, in the twin's home (the world it protects); for a real target, in this
machine's state directory (``$GOLDENPATH_STATE_DIR``, else ``$XDG_STATE_HOME/goldenpath``, else
``~/.local/state/goldenpath``), keyed by project and region, so two checkouts or two reports
folders on one machine (or one CI runner) still exclude each other. Across machines the lock
cannot see the other run; there the APIs' own guards hold (Cloud Run's etag, Cloud SQL's
settingsVersion, a dashboard's etag): a change planned from a state that moved is refused.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from goldenpath.config import Target


def lock_path(target: Target) -> Path:
    if target.twin_home is not None:
        return target.twin_home.resolve() / "locks" / f"{target.name}.lock"
    base = os.environ.get("GOLDENPATH_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "goldenpath")
    key = hashlib.sha256(f"{target.project}/{target.region}".encode()).hexdigest()[:12]
    return Path(base) / "locks" / f"{target.project}-{target.region}-{key}.lock"


def alive(host: str, pid: int) -> bool | None:
    """Whether the process still runs: None when it is on another host (it cannot be checked here)."""
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # a pid reused by something else is not the run
        try:
            return b"python" in cmdline.read_bytes() or b"pytest" in cmdline.read_bytes()
        except OSError:
            return True
    return True


@dataclass(frozen=True)
class Holder:
    run: str
    identity: str
    host: str
    pid: int
    started: str
    journal: str

    def describe(self) -> str:
        return (f"run {self.run} of {self.identity} on {self.host}, pid {self.pid}, since {self.started} "
                f"(journal {self.journal})")


class Locked(Exception):
    """The lock is held (or stale and not to be broken): the message is the operator's paragraph."""


class TargetLock:
    def __init__(self, target: Target, run_id: str, identity: str, journal: Path) -> None:
        self.target = target
        self.path = lock_path(target)
        self.me = Holder(run_id, identity, socket.gethostname(), os.getpid(),
                         datetime.now(timezone.utc).isoformat(), str(journal))
        self.held = False

    @contextmanager
    def _guard(self) -> Iterator[None]:
        # Check-then-take in one critical section: two runs that find the same stale lock must not
        # both take it over.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".guard"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def holder(self) -> Holder | None:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
            return Holder(**{k: data[k] for k in Holder.__dataclass_fields__})
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return Holder("?", "?", "?", 0, "?", "?")  # a torn file: treat as stale

    def acquire(self, break_stale: bool, takeover: frozenset[str] = frozenset()) -> Holder | None:
        """Take the lock; returns the stale holder it replaced (for the journal), if any. Raises
        :class:`Locked` with the paragraph to show when another run holds it."""
        with self._guard():
            held = self.holder()
            if held is not None and held.run != self.me.run:
                state = alive(held.host, held.pid) if held.pid else False
                if state is not False:
                    where = "" if state else " (on another host: this machine cannot check whether it still runs)"
                    raise Locked(
                        f"Another remediation of target {self.target.name!r} is running: {held.describe()}{where}. "
                        "Only one remediation at a time may change a target: wait for it to finish (read-only runs "
                        f"are not affected). If it is certainly gone, run again with --break-lock (lock file {self.path}).")
                if not (break_stale or held.run in takeover):
                    raise Locked(
                        f"A stale remediation lock of target {self.target.name!r} is in the way: {held.describe()}; that "
                        "process is gone, so the run may have been interrupted mid-change. Run `--recover` to settle "
                        "what it left (it takes the lock over), or, if you know the target is as it should be, run "
                        f"again with --break-lock (lock file {self.path}).")
            else:
                held = None
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.me.__dict__, indent=1) + "\n")
            os.replace(tmp, self.path)
            self.held = True
            return held

    def release(self) -> None:
        if not self.held:
            return
        with self._guard():
            held = self.holder()
            if held is not None and held.run == self.me.run:
                self.path.unlink(missing_ok=True)
        self.held = False
