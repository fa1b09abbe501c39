"""Fixtures that drive the real gate, as a user would, against a real twin of its own.

The selftest twin listens on free loopback ports and keeps its world in a temporary folder, so
running the selftests never touches a developer's own twin (``.twin/``) or ``reports/``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from goldenpath.twinctl import free_ports, relocate_sim

ROOT = Path(__file__).resolve().parents[1]
# The twin's rehearsal account (its scenarios' [golden_path], a scenario value, not a secret). The sim
# target names no variables, so the gate reads the account from the twin; nothing exports it.
REHEARSAL_USER, REHEARSAL_PASSWORD = "rehearsal@netrasystems.ai", "rehearsal-only-not-a-secret"
# A twin target that names environment variables for its account, as a real target must.
ACCOUNT_VARIABLES = {"GP_REHEARSAL_USER": REHEARSAL_USER, "GP_REHEARSAL_PASSWORD": REHEARSAL_PASSWORD}
SCENARIOS = ROOT / "twin" / "scenarios"
# The shipped scenarios keep Google's delay before a new log-based metric is usable in an alert
# policy (600 twin seconds). The selftests shorten it to this (twin seconds) unless a test asks for
# Google's: Phase 4 still meets the delay (its first policy on a new metric is refused, then retried)
# without a ten-minute wait per test.
FAST_PROPAGATION = 2.0


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def outcome(self, test: str) -> str | None:
        """What pytest's short summary (run the gate with ``-rA``) says of the test whose node id ends
        in ``::test`` (a name, with its parameter if it has one): PASSED, FAILED, ERROR, or None.
        Not the ``-v`` progress lines: with ``-v`` the live debug trail may stand between a test's
        name and its outcome."""
        for line in self.stdout.splitlines():
            word, _, rest = line.partition(" ")
            if word in ("PASSED", "FAILED", "ERROR") and rest.split(" - ")[0].endswith("::" + test):
                return word
        return None


@dataclass
class Sandbox:
    """A targets file, a twin home and a reports folder for one selftest session."""

    root: Path
    targets: Path
    home: Path
    reports: Path
    control: str
    data: str
    grpc: str

    def gate(self, *args: str, target: str = "sim", targets: Path | None = None, env: dict[str, str] | None = None,
             python_flags: tuple[str, ...] = (), unset: tuple[str, ...] = ()) -> Run:
        """Run the real gate in a subprocess from the repository root, as plain pytest would; ``unset``:
        variables removed from its environment."""
        cmd = [sys.executable, *python_flags, "-m", "pytest", "tests", "-p", "no:cacheprovider",
               "--targets-file", str(targets or self.targets), "--target", target,
               "--reports-dir", str(self.reports), *args]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={k: v for k, v in {**os.environ, **(env or {})}.items()
                                   if k not in unset}, stdin=subprocess.DEVNULL)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def twin(self, *args: str) -> Run:
        proc = subprocess.run([sys.executable, "-m", "twin", "--home", str(self.home), *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def status(self) -> dict[str, Any]:
        return httpx.get(f"http://{self.control}/_twin/status", timeout=10).json()

    def reset(self, scenario: str = "incident-1278", clock_scale: float = 1,
              propagation: float | None = FAST_PROPAGATION) -> None:
        """Reset the twin to a scenario; ``propagation``: its metric_propagation_seconds instead of
        the scenario's own (None: the scenario's, Google's 600 s for every shipped one)."""
        ref = scenario if propagation is None else str(self.scenario_variant(
            scenario, metric_propagation_seconds=propagation))
        resp = httpx.post(f"http://{self.control}/_twin/reset", params={"scenario": ref,
                                                                         "clock_scale": clock_scale}, timeout=10)
        assert resp.status_code == 200, resp.text

    def scenario_variant(self, scenario: str, **timing: float) -> Path:
        """A copy of a scenario (a shipped one's name, or a file a test wrote) with some of its
        [timing] values replaced."""
        given = Path(scenario)
        source = given if given.suffix == ".toml" else SCENARIOS / f"{scenario}.toml"
        lines = source.read_text().splitlines()
        if "[timing]" not in lines:
            lines.append("[timing]")
        start = lines.index("[timing]")
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
        kept = [ln for ln in lines[start + 1:end] if ln.split("=", 1)[0].strip() not in timing]
        lines[start + 1:end] = kept + [f"{k} = {float(v)!r}" for k, v in timing.items()]
        path = self.root / f"scenario-{source.stem}-{'-'.join(f'{k}-{v:g}' for k, v in timing.items())}.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def writes(self) -> int:
        return self.status()["requests"]["writes"]

    def serving(self, service: str = "netra-backend-staging") -> dict[str, int]:
        for svc in self.status()["run"]["services"]:
            if svc["name"].endswith("/" + service):
                # REST JSON leaves a 0 % out (a tagged revision at 0 %)
                return {t["revision"]: t.get("percent", 0) for t in svc["trafficStatuses"]}
        raise KeyError(service)

    def revisions(self) -> set[str]:
        return {r["name"].rsplit("/", 1)[-1] for r in self.status()["run"]["revisions"]}

    def journal(self) -> list[dict[str, Any]]:
        """The journal's records about changes (run.start, phase.end, run.end, lock.* left out)."""
        return [r for r in self.journal_all() if "step" in r]

    def journal_all(self) -> list[dict[str, Any]]:
        path = self.reports / "journal.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def fresh_journal(self) -> None:
        """A new world's history: no journal (so no earlier test's unfinished change) and no lock
        a killed run left."""
        (self.reports / "journal.jsonl").unlink(missing_ok=True)
        shutil.rmtree(self.home / "locks", ignore_errors=True)

    def with_faults(self, scenario: str, faults: str, **timing: float) -> Path:
        """A copy of a scenario with ``faults`` (TOML ``[[faults]]`` tables) added: the way a test
        injects an API's failure into the real twin."""
        given = Path(scenario)
        source = given if given.suffix == ".toml" else SCENARIOS / f"{scenario}.toml"
        path = self.root / f"scenario-{source.stem}-faults-{abs(hash(faults)) % 10**8}.toml"
        path.write_text(source.read_text() + "\n" + faults.strip() + "\n")
        timing = {"metric_propagation_seconds": FAST_PROPAGATION, **timing}
        return self.scenario_variant(str(path), **timing)

    def targets_naming_account(self) -> Path:
        """The sandbox's targets file, its sim target naming the variables of ACCOUNT_VARIABLES for
        the Golden Path's account (as a real target does) instead of using the twin's own."""
        text = self.targets.read_text()
        line = next(ln for ln in text.splitlines() if ln.startswith("golden_path = {"))
        named = line.replace("{ ", '{ user_env = "GP_REHEARSAL_USER", password_env = "GP_REHEARSAL_PASSWORD", ', 1)
        return self.write_targets("targets-account-variables.toml", text.replace(line, named))

    def write_targets(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text)
        return path


def pytest_configure(config: pytest.Config) -> None:
    # Under xdist (bin/selftest runs the files on several workers) the worker's own variables must
    # not reach the gate the tests start: the gate would take itself for an xdist worker and refuse
    # to remediate. Each worker has its own sandbox (free ports, its own twin and reports).
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        os.environ.pop(name, None)


def make_sandbox(root: Path) -> Sandbox:
    """A sandbox in ``root``: the shipped `sim` target moved to free ports and a home of its own (a
    test that needs a second twin, the capture's round trip, makes another)."""
    home = root / "twin-home"
    control, data, grpc = (f"127.0.0.1:{p}" for p in free_ports(3))
    targets = root / "targets.toml"
    targets.write_text(relocate_sim(ROOT / "targets.toml", home, control, data, grpc))
    return Sandbox(root, targets, home, root / "reports", control, data, grpc)


def stop_sandbox(box: Sandbox) -> None:
    """Stop the sandbox's twin (the gate leaves it running on purpose: the world persists between runs)."""
    info = box.home / "server.json"
    if info.exists():
        pid = json.loads(info.read_text())["pid"]
        try:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and info.exists():
                time.sleep(0.05)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = make_sandbox(tmp_path_factory.mktemp("gate"))
    yield box
    stop_sandbox(box)


@pytest.fixture
def incident(sandbox: Sandbox) -> Sandbox:
    """The sandbox twin running and reset to the runbook's incident, with an empty journal."""
    return _fresh_world(sandbox, "incident-1278")


@pytest.fixture
def healthy(sandbox: Sandbox) -> Sandbox:
    """The sandbox twin running and reset to the healthy staging, with an empty journal."""
    return _fresh_world(sandbox, "healthy")


def _fresh_world(sandbox: Sandbox, scenario: str) -> Sandbox:
    _ensure_twin(sandbox)
    sandbox.reset(scenario)
    sandbox.fresh_journal()
    return sandbox


def _ensure_twin(sandbox: Sandbox) -> None:
    try:
        httpx.get(f"http://{sandbox.control}/_twin/health", timeout=2)
        return
    except httpx.HTTPError:
        pass
    # The first gate run of the session starts the twin by itself (that is part of what is tested);
    # a read-only phase-1 run is the cheapest way to get there.
    run = sandbox.gate("-m", "phase1", "-q")
    assert run.returncode in (0, 1), run.output
