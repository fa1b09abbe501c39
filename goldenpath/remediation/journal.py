"""The mutation journal: a write-ahead log, one JSON line per event, on disk before the next step.

Every change is journaled before the call (``apply.before``: the change, the state it was planned
from and the state it leads to), when its operation is known (``apply.operation``), and after
(``apply.after``, ``apply.failed`` then ``apply.reconciled``, ``rollback.*``). A crash at any point
therefore leaves a record of what was being done and of the state to restore; a later run reads
these records (:mod:`goldenpath.remediation.interrupted`) and ``--recover`` acts on them
(:mod:`goldenpath.remediation.recover`). ``run.start`` and ``run.end`` bracket a run's records, so
a run that ended can be told from one that was killed.

Records carry the run's pid and host (to tell a dead run from a live one) and a sequence number.
Environment values are redacted (:mod:`goldenpath.redact`) except the target's required ones.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from goldenpath import failpoint
from goldenpath.redact import redact

SCHEMA = 2  # records without "journal": 2 come from before the journal was read back; they are not


def change_fields(change: Any) -> dict[str, Any]:
    """What a later run needs to rebuild the change (everything but the derived diff)."""
    return {k: v for k, v in change.to_json().items() if k not in ("diff", "needs_consent", "payload", "before",
                                                                     "after")}


class Journal:
    def __init__(self, path: Path, target: str, identity: str, run_id: str, keep_env: frozenset[str] = frozenset()) -> None:
        self.path = path
        self.target = target
        self.identity = identity
        self.run_id = run_id
        self.keep_env = keep_env  # environment variables whose values may be written (the required ones)
        self.records: list[dict[str, Any]] = []
        # --plan FILE: its digest on every record about a change, tying the change to the reviewed plan
        self.plan = ""
        self._seq = 0
        # Steps of one phase run at once (goldenpath.remediation.schedule): one record at a time,
        # each whole on its own line, numbered in the order written.
        self._lock = threading.Lock()

    def write(self, event: str, change: Any = None, **fields: Any) -> dict[str, Any]:
        with self._lock:
            return self._write(event, change, fields)

    def _write(self, event: str, change: Any, fields: dict[str, Any]) -> dict[str, Any]:
        self._seq += 1
        record: dict[str, Any] = {
            "time": datetime.now(timezone.utc).isoformat(),
            "journal": SCHEMA,
            "run": self.run_id,
            "seq": self._seq,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "target": self.target,
            "identity": self.identity,
            "event": event,   # run.start, apply.before, apply.operation, apply.after, apply.failed, …
        }
        if change is not None:
            record.update({"phase": change.phase, "step": change.step, "resource": change.resource,
                           "summary": change.summary})
            if self.plan:
                record["plan"] = self.plan
        record.update(redact(fields, self.keep_env))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.records.append(record)
        failpoint.hit(event)
        return record

    @property
    def started(self) -> bool:
        return bool(self.records)


def read(path: Path) -> list[dict[str, Any]]:
    """Every record of a journal file; a line cut short by a crash mid-write is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out
