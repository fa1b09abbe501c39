"""A real twin process for the twin's own tests: free loopback ports, a temporary home, a clean stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import httpx
import pytest

from goldenpath.twinctl import free_ports

if TYPE_CHECKING:
    import grpc

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class TwinProcess:
    home: Path
    control_port: int
    data_port: int
    grpc_port: int
    log: Path


@contextmanager
def grpc_channel(proc: TwinProcess, timeout: float) -> Iterator["grpc.Channel"]:
    """A plaintext channel to the twin's gRPC face, once it answers (it starts alongside the control
    plane, not necessarily before it); closed when the block ends."""
    import grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{proc.grpc_port}")
    try:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            pytest.fail(f"the twin's gRPC port {proc.grpc_port} did not become ready:\n{proc.log.read_text()}")
        yield channel
    finally:
        channel.close()


@contextmanager
def running_twin(home: Path, scenario: str) -> Iterator[TwinProcess]:
    """``python -m twin serve`` in ``home``, answering, until the block ends."""
    cport, dport, gport = free_ports(3)
    log = home.parent / f"{home.name}.log"  # outside the home, which the twin owns
    cmd = [sys.executable, "-m", "twin", "--home", str(home), "serve", "--control", f"127.0.0.1:{cport}",
           "--data", f"127.0.0.1:{dport}", "--grpc", f"127.0.0.1:{gport}", "--scenario", scenario]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_healthy(proc, f"http://127.0.0.1:{cport}/_twin/health", log)
        yield TwinProcess(home, cport, dport, gport, log)
    finally:
        stop(proc)


def wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path, deadline_s: float = 30.0) -> None:
    deadline, delay = time.monotonic() + deadline_s, 0.02
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the twin exited with {proc.returncode} before answering:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(delay)  # a process coming up: backoff, bounded by the deadline
        delay = min(delay * 1.5, 0.5)
    pytest.fail(f"the twin did not answer {url} within {deadline_s:.0f} s:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
