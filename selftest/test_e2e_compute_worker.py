"""The Compute reads' worker process (goldenpath/gcp/compute.py): started only by a run that reads a
certificate, the gate's own process never importing compute_v1; killed mid-read, the gate reads in
its own process; the gate killed, its worker does not outlive it. Behaviour only, no timing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selftest.conftest import ROOT, Sandbox

# Runs the gate in this process, then says whether the gate's process imported compute_v1.
PROBE = ("import sys, pytest\n"
         "code = pytest.main(sys.argv[1:])\n"
         "print('COMPUTE_V1_IMPORTED=' + str('google.cloud.compute_v1' in sys.modules))\n"
         "sys.exit(int(code))\n")
STARTED = re.compile(r"compute: worker process (\d+) started")


def _run(box: Sandbox, marker: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], bool, str]:
    log = box.root / f"trail-{marker.replace(' ', '-')}.log"
    cmd = [sys.executable, "-c", PROBE, "tests", "-p", "no:cacheprovider", "-q", "-m", marker,
           "--targets-file", str(box.targets), "--target", "sim", "--reports-dir", str(box.reports),
           "--log-file", str(log), "--log-file-level", "DEBUG"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("COMPUTE_V1_IMPORTED=")), None)
    assert line is not None, f"the probe did not report (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc, line.endswith("True"), log.read_text()


def _gone(pid: int) -> bool:
    """No such process, or only its exit status left (a zombie no one has reaped yet)."""
    status = Path(f"/proc/{pid}/status")
    try:
        state = next(ln for ln in status.read_text().splitlines() if ln.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return True
    return "Z" in state.split(":", 1)[1]


def _wait_gone(pid: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _gone(pid)


def test_only_a_run_that_reads_a_certificate_starts_the_worker(healthy: Sandbox) -> None:
    for marker in ("phase1", "phase3 or phase4"):
        _, imported, trail = _run(healthy, marker)
        assert not imported, f"-m {marker} imported google.cloud.compute_v1 (~150 MB) in the gate's process"
        assert not STARTED.search(trail), f"-m {marker} started the Compute worker"
    proc, imported, trail = _run(healthy, "phase2")
    assert proc.returncode == 0, proc.stdout[-3000:]
    # The certificate was read, through the worker: the gate's process never imported the client.
    assert not imported, "-m phase2 imported google.cloud.compute_v1 in the gate's process, not in its worker"
    assert re.search(r"compute sslCertificates\.get \S+: ok in", trail), trail[-3000:]
    started = STARTED.search(trail)
    assert started, trail[-3000:]
    assert "reading in the gate's process" not in trail
    # Only the part of compute_v1 it uses (goldenpath.gcp.compute._ssl_certificates_only).
    assert "compute: the worker is ready: imported the sslCertificates client of google.cloud.compute_v1 alone" \
        in trail, trail[-3000:]
    assert re.search(rf"compute: worker process {started.group(1)} stopped", trail)
    assert _wait_gone(int(started.group(1))), "the worker outlived the gate run"


@pytest.mark.parametrize("point, said", [
    ("compute.worker.import", "compute: the worker process failed (BrokenProcessPool"),  # killed while importing
    ("compute.worker.read", "compute: the worker process died"),  # killed as it starts the read
])
def test_a_killed_worker_is_replaced_by_a_read_in_the_gates_process(healthy: Sandbox, point: str, said: str) -> None:
    # The worker SIGKILLs itself there (the failpoint is hit in the worker only): the certificate
    # is still read and judged, and the trail says where the read was made.
    proc, imported, trail = _run(healthy, "phase2", env={"GOLDENPATH_FAILPOINT": point})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert said in trail and "reading in the gate's process" in trail, trail[-3000:]
    assert re.search(r"compute sslCertificates\.get \S+: ok in", trail)
    assert imported  # the fallback read imported the client here


def test_the_worker_does_not_outlive_a_killed_gate(healthy: Sandbox) -> None:
    log = healthy.root / "trail-killed.log"
    log.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider", "-q", "-m", "phase2",
           "--targets-file", str(healthy.targets), "--target", "sim", "--reports-dir", str(healthy.reports),
           "--log-file", str(log), "--log-file-level", "DEBUG"]
    gate = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    try:
        deadline, started = time.monotonic() + 120, None
        while started is None and gate.poll() is None and time.monotonic() < deadline:
            started = STARTED.search(log.read_text()) if log.exists() else None
            time.sleep(0.02)
        assert started, f"the gate did not start its worker (exit {gate.returncode})"
        gate.send_signal(signal.SIGKILL)  # no finally, no atexit: what an OOM kill leaves
        gate.wait(timeout=30)
    finally:
        if gate.poll() is None:
            gate.kill()
    assert _wait_gone(int(started.group(1))), f"the worker {started.group(1)} outlived the killed gate"
