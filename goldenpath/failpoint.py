"""Failpoints: kill this process at a named point, so a crash can be tested by causing one.

``GOLDENPATH_FAILPOINT=EVENT`` (or ``EVENT#N`` for the N-th occurrence) makes the process SIGKILL
itself right after the journal record ``EVENT`` is on disk: the same state a power cut, an OOM kill
or an operator's ``kill -9`` would leave at that point. Nothing is cleaned up, no ``finally`` runs.
The selftests use it to show that ``--recover`` brings the target back from every journal point
(the approach of FreeBSD's fail(9) and TiKV's fail-rs). Unset, it does nothing.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "GOLDENPATH_FAILPOINT"
_seen: dict[str, int] = {}


def hit(event: str) -> None:
    spec = os.environ.get(VARIABLE, "")
    if not spec:
        return
    name, _, nth = spec.partition("#")
    if name != event:
        return
    _seen[event] = _seen.get(event, 0) + 1
    if _seen[event] == (int(nth) if nth.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)
