"""Independent steps at once: which changes of a phase wait for which, and running them so.

A change waits for every earlier change (in plan order) that touches the same thing
(:attr:`Change.key`: its resource, or what it declares in ``touches``) and for every earlier change
whose key it ``needs``; a change that needs --yes (irreversible, restart-causing, destructive) runs
alone (:func:`alone`). Everything else runs at once, each step in a thread of its own: one
rollout per service, the connector beside the database. A rollback runs the same order backwards:
an undo waits for the undos of the changes that waited for it.

Each step runs in a copy of the caller's context (:mod:`contextvars`), so what a step sets for
itself (the runner's journal hook for the operations it starts) is its own.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Sequence

from goldenpath.remediation.change import Change

# At most this many steps at once: 20 services' rollouts in two waves, each rollout a handful of
# Cloud Run requests spread over its minute.
MAX_AT_ONCE = 10


def alone(change: Change) -> bool:
    """A change that runs by itself: one that cannot be undone, restarts something or takes something
    away while it runs (the ones that need --yes). Beside another step that fails, its cost would
    be paid for nothing (a database restarted, and restarted again by the rollback) or for good (an
    irreversible change the plan order would have avoided)."""
    return change.needs_consent


def _ordered(first: Change, then: Change) -> bool:
    return first.key == then.key or first.key in then.needs or alone(first) or alone(then)


def waits_for(changes: Sequence[Change]) -> list[list[int]]:
    """For each change (by index), the earlier ones it must wait for."""
    return [[j for j in range(i) if _ordered(changes[j], c)] for i, c in enumerate(changes)]


def undo_waits_for(applied: Sequence[Change]) -> list[list[int]]:
    """For each change of ``applied`` (in the order they were applied), the later ones whose undo
    must come first: the ones that waited for it."""
    return [[k for k in range(i + 1, len(applied)) if _ordered(c, applied[k])] for i, c in enumerate(applied)]


def run(changes: Sequence[Change], deps: Sequence[Sequence[int]], step: Callable[[Change], bool], *,
        stop_on_failure: bool) -> bool:
    """``step(change)`` for each change once the ones it waits for (``deps``, by index) have
    finished, as many at once as may be; True when every step ran and returned True.

    ``stop_on_failure``: once a step returns False (or raises), no further step starts; the ones
    under way finish (a write in flight cannot be called back), so whatever they applied is known
    to the caller before it rolls back. Otherwise every step runs whatever the others returned (a
    rollback undoes all it can). An exception from a step is raised once all steps under way ended."""
    if not changes:
        return True
    if len(changes) == 1:
        return step(changes[0])
    finished: set[int] = set()
    pending = list(range(len(changes)))
    running: dict[Future[bool], int] = {}
    ok, error = True, None
    with ThreadPoolExecutor(max_workers=min(MAX_AT_ONCE, len(changes)) or 1,
                            thread_name_prefix="step") as pool:
        while pending or running:
            if ok or not stop_on_failure:
                for i in [i for i in pending if all(j in finished for j in deps[i])]:
                    if len(running) >= MAX_AT_ONCE:
                        break
                    pending.remove(i)
                    running[pool.submit(contextvars.copy_context().run, step, changes[i])] = i
            if not running:
                break  # nothing under way, and nothing may start
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                i = running.pop(future)
                finished.add(i)
                try:
                    if not future.result():
                        ok = False
                except BaseException as exc:  # noqa: BLE001 - re-raised below, once the others ended
                    ok, error = False, error or exc
    if error is not None:
        raise error
    return ok and not pending
