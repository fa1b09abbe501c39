"""The mutation journal: one JSON line before and one after every change, flushed at once.

Written before the call (intent) so that a crash mid-change still leaves a record of what was
being done and of the state to restore by hand.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from goldenpath.redact import redact


class Journal:
    def __init__(self, path: Path, target: str, identity: str, run_id: str, keep_env: frozenset[str] = frozenset()) -> None:
        self.path = path
        self.target = target
        self.identity = identity
        self.run_id = run_id
        self.keep_env = keep_env  # environment variables whose values may be written (the required ones)
        self.records: list[dict[str, Any]] = []

    def write(self, event: str, change: Any, **fields: Any) -> dict[str, Any]:
        record = {
            "time": datetime.now(timezone.utc).isoformat(),
            "run": self.run_id,
            "target": self.target,
            "identity": self.identity,
            "event": event,   # apply.before, apply.after, apply.failed, rollback.before, …
            "phase": change.phase,
            "step": change.step,
            "resource": change.resource,
            "summary": change.summary,
            **redact(fields, self.keep_env),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.records.append(record)
        return record
