"""goldenpath.warmup: heavy imports in the background while an operation is waited on, and none left
running when a timed probe starts. Real imports of modules written here (one blocks until the test
lets it finish, so "still running" is a state the test holds, not a race it hopes for)."""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path
from typing import Iterator

import pytest

from goldenpath.config import Certificate
from goldenpath.observe import Observer
from goldenpath.warmup import Warmup
from selftest.unit.phase4_world import target

GATE = threading.Event()


@pytest.fixture
def modules(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two importable modules: the first blocks until GATE is set (reached through a module of its
    own in sys.modules, whatever name pytest gave this one)."""
    gate = types.ModuleType("gp_warm_gate")
    gate.GATE = GATE  # type: ignore[attr-defined]
    sys.modules["gp_warm_gate"] = gate
    (tmp_path / "gp_warm_slow.py").write_text(
        "import gp_warm_gate\nassert gp_warm_gate.GATE.wait(30), 'the test never let the import end'\n")
    (tmp_path / "gp_warm_fast.py").write_text("VALUE = 1\n")
    sys.path.insert(0, str(tmp_path))
    GATE.clear()
    try:
        yield "gp_warm_slow", "gp_warm_fast"
    finally:
        GATE.set()
        sys.path.remove(str(tmp_path))
        for name in ("gp_warm_slow", "gp_warm_fast", "gp_warm_gate"):
            sys.modules.pop(name, None)


def test_one_module_per_wait_and_quiet_waits_for_it(modules: tuple[str, str]) -> None:
    slow, fast = modules
    warm = Warmup()
    warm.want((slow, fast))
    warm.start("operation A is waited on")
    thread = warm._thread
    assert thread is not None and thread.is_alive()
    warm.start("operation B is waited on")  # one import at a time: B's wait adds nothing now
    assert warm._thread is thread and fast not in sys.modules

    threading.Timer(0.2, GATE.set).start()
    warm.quiet("phase 1")  # before timed probes: returns only once the import has ended
    assert not thread.is_alive() and slow in sys.modules
    assert warm.pending == (fast,)

    warm.start("operation C is waited on")  # the next wait imports the next module
    warm.quiet("phase 3")
    assert fast in sys.modules and not warm.pending
    done = warm._thread
    warm.start("operation D is waited on")  # nothing left: no thread
    assert warm._thread is done


def test_quiet_imports_the_probes_own_clients_here(modules: tuple[str, str]) -> None:
    _, fast = modules
    warm = Warmup()  # nothing wanted, nothing started
    warm.quiet("phase 1", (fast,))
    assert fast in sys.modules and warm._thread is None


def test_a_failing_background_import_is_left_to_the_read_that_needs_it(tmp_path: Path) -> None:
    warm = Warmup()
    warm.want(("gp_warm_no_such_module",))
    warm.start("operation A is waited on")
    warm.quiet("phase 1")  # no exception here: the read that imports it reports the error itself
    assert "gp_warm_no_such_module" not in sys.modules


@pytest.mark.parametrize("phases, certificate, wanted", [
    ((1,), True, ()),
    ((1, 3), True, ()),
    ((1, 2), True, ("google.cloud.monitoring_v3", "googleapiclient.discovery")),
    ((1, 2), False, ("google.cloud.monitoring_v3", "googleapiclient.discovery")),
    ((3, 4), True, ("google.cloud.monitoring_v3", "google.cloud.monitoring_dashboard_v1")),
])
def test_only_the_modules_of_the_phases_this_run_reads(phases: tuple[int, ...], certificate: bool,
                                                       wanted: tuple[str, ...]) -> None:
    t = target().model_copy(update={"certificate": Certificate(name="staging-ssl-cert") if certificate else None})
    observer = Observer(t)
    try:
        observer.expect(phases)
        assert observer.session.warmup._wanted == wanted
        # compute_v1 is never imported in the gate's process: Phase 2's certificate read starts its
        # worker process instead (goldenpath/gcp/compute.py; selftest/test_e2e_compute_worker.py)
        assert (observer.compute._pool is not None) == (2 in phases and certificate)
    finally:
        observer.close()
