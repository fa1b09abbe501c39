"""Start the embedded twin when a target needs it, and talk to its admin endpoints.

The suite reaches the twin only over the wire: it starts ``python -m twin serve`` as a separate
process (which outlives the pytest run, so the world persists between runs) and waits for it to
answer, with backoff and a deadline.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from goldenpath.config import Target, ca_problem
from goldenpath.config import load as load_target
from goldenpath.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
START_DEADLINE = 30.0


def _control(method: str, control: str, path: str, timeout: float, **kwargs: Any) -> httpx.Response:
    """One request to the twin's control plane: plain HTTP to a loopback address, so there is no TLS
    and no certificate to verify. ``verify=False`` only spares httpx building a TLS context with
    certifi's public roots for a client that never uses it: 19 ms of every call, measured here, which
    a `-m phase1` run paid before its first look."""
    return httpx.request(method, f"http://{control}{path}", timeout=timeout, verify=False, **kwargs)


def _health(control: str) -> dict[str, Any] | None:
    try:
        resp = _control("GET", control, "/_twin/health", 2.0)
        return resp.json() if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def ensure_running(target: Target) -> dict[str, Any]:
    """Return the twin's health answer, starting the twin first if nothing answers."""
    health = _ensure_running(target)
    # A CA bundle inside the twin's home is the twin's own, written on its first start: only now
    # can it be checked (config.check_files let a missing one through).
    if target.ca_path is not None and (why := ca_problem(target.ca_path)):
        raise ConfigError(
            f"The twin for target {target.name!r} answers, but its ca_bundle cannot be used: {why}. Point "
            f"ca_bundle in {target.source} at the twin's CA (ca.pem in its home {target.twin_home}), or reset "
            "the twin's home so that it writes a new one."
        )
    return health


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _ensure_running(target: Target) -> dict[str, Any]:
    assert target.twin is not None and target.twin_home is not None
    tw, home = target.twin, target.twin_home
    health = _health(tw.control)
    if health is not None:
        if Path(health.get("home", "")) != home.resolve():
            raise ConfigError(
                f"A twin already answers on {tw.control}, but it keeps its world in {health.get('home')}, not "
                f"in {home} as target {target.name!r} says. Stop it (`python -m twin --home {health.get('home')} "
                f"stop`) or give this target other ports in {target.source}."
            )
        return {**health, "started": False}
    home.mkdir(parents=True, exist_ok=True)
    log = (home / "twin.log").open("ab")
    # A scenario file is relative to the targets file, like every path in it; the twin runs elsewhere.
    scenario = str(target.path(tw.scenario)) if tw.scenario.endswith(".toml") else tw.scenario
    cmd = [sys.executable, "-m", "twin", "--home", str(home), "serve",
           "--control", tw.control, "--data", tw.data, "--grpc", tw.grpc, "--scenario", scenario]
    # A session of its own: the twin must survive this pytest run, its world with it.
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    deadline = time.monotonic() + START_DEADLINE
    delay = 0.05
    while time.monotonic() < deadline:
        health = _health(tw.control)
        if health is not None:
            return {**health, "started": True, "pid": proc.pid}
        if proc.poll() is not None:
            break
        time.sleep(delay)  # waiting for a process to come up: backoff, bounded by the deadline
        delay = min(delay * 1.5, 0.5)
    tail = _one_line((home / "twin.log").read_text(errors="replace")[-600:])
    if proc.poll() is not None and "address already in use" not in tail.lower():
        # It exited on its own: its last words say why (a bad scenario, a broken world), not the ports.
        raise ConfigError(
            f"The embedded twin for target {target.name!r} exited with code {proc.returncode} before answering "
            f"(last output: {tail or 'none'}). Fix what it names ([targets.{target.name}.twin] in "
            f"{target.source}, or the world in {home}: `python -m twin --home {home} reset`); its log is "
            f"{home / 'twin.log'}."
        )
    raise ConfigError(
        f"The embedded twin for target {target.name!r} did not start on {tw.control} / {tw.data} "
        f"(last output: {tail or 'none'}). If another program holds those ports, change [targets."
        f"{target.name}.twin] control/data in {target.source}; the twin's log is {home / 'twin.log'}."
    )


def status(target: Target) -> dict[str, Any]:
    assert target.twin is not None
    resp = _control("GET", target.twin.control, "/_twin/status", 10.0)
    resp.raise_for_status()
    return resp.json()


def rehearsal_account(target: Target) -> tuple[str, str]:
    """The twin's own rehearsal account (its scenario's user and password)."""
    account = status(target)["rehearsal_account"]
    return account["user"], account["password"]


def clock_scale(target: Target) -> float:
    """How many seconds of the twin's time one real second is (1 for anything but a sped-up twin)."""
    if target.twin is None:
        return 1.0
    return float(status(target).get("clock_scale", 1.0))


def reset(target: Target, scenario: str | None = None) -> dict[str, Any]:
    assert target.twin is not None
    params = {"scenario": scenario} if scenario else {}
    resp = _control("POST", target.twin.control, "/_twin/reset", 10.0, params=params)
    if resp.status_code != 200:
        raise ConfigError(json.loads(resp.text).get("error", resp.text))
    return resp.json()


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (every socket is held open until each has its port)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def relocate_sim(source: Path, home: Path, control: str, data: str, grpc: str) -> str:
    """The text of a targets file whose `sim` twin is moved to other ports and another home.

    Selftests and benchmarks run the shipped `sim` target this way, beside a developer's own twin.
    """
    sim = load_target(source, "sim")
    twin = sim.twin
    assert twin is not None
    text = source.read_text().replace(twin.control, control).replace(twin.data, data).replace(twin.grpc, grpc)
    if sim.monitoring is not None:  # the definitions stay where they are, wherever the file goes
        text = text.replace(f'definitions = "{sim.monitoring.definitions}"',
                            f'definitions = "{sim.path(sim.monitoring.definitions).resolve()}"')
    return text.replace(f'"{twin.home}', f'"{home}')  # the home and the CA bundle inside it
