"""Time to green on the twin: where every second of an incident remediation goes. Prints numbers.

    .venv/bin/python bench/time_to_green.py [--runs 5]
    .venv/bin/python bench/time_to_green.py --services 20 [--runs 5]

Default mode: the real gate (`pytest tests --remediate --yes`, all phases) as a subprocess against a
twin of its own (free loopback ports, temporary home), each run from a fresh incident-1278 world.
The scenario's metric_propagation_seconds is shortened to 2 s as in the selftests (Google's 600 s
would make Phase 4 wait ten minutes for a new log-based metric). For each phase (the interval its
fixture ran: verdict.json's ``phases``) it prints:

* wall: the fixture's interval;
* imposed: the time the twin itself made the gate wait in that interval (``python -m twin status
  --json``, ``imposed.events``: operations, restarts, metric periods, metric propagation, data-plane
  latency), as the union of the events' intervals clipped to the phase (concurrent waits count once);
* overhead: wall - imposed, the gate's own time;
* the API requests (``requests.timeline``) inside the interval, reads and writes.

Then the whole process (start to exit, which includes pytest's start and the verdict): the same
four numbers and the gate process's peak RSS (os.wait4 on its pid). The last line is
``wall_s=… imposed_s=… overhead_s=… requests=…``: medians over the runs, whole process.

``--services N``: the read-only full gate (no remediation) on healthy staging with its 2 shipped
Cloud Run services and with N (bench/scale.py): wall time, API requests, and Logging entries.list
calls (Google's quota: 60 a minute per project, https://cloud.google.com/logging/quotas).

Nothing here asserts: it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import scale  # noqa: E402
from goldenpath.twinctl import free_ports, relocate_sim  # noqa: E402

FAST_PROPAGATION = 2.0  # twin seconds, as selftest/conftest.py's
PHASES = ("1", "2", "3", "4")


@dataclass
class Twin:
    root: Path
    home: Path
    control: str
    data: str
    grpc: str
    targets: Path

    def scenario(self, name: str, text: str) -> Path:
        """A scenario file with metric_propagation_seconds shortened (appended to its [timing])."""
        lines = text.splitlines()
        at = lines.index("[timing]") + 1
        lines = [ln for ln in lines if not ln.startswith("metric_propagation_seconds")]
        lines.insert(at, f"metric_propagation_seconds = {FAST_PROPAGATION}")
        path = self.root / f"{name}.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def reset(self, scenario: Path) -> None:
        resp = httpx.post(f"http://{self.control}/_twin/reset", params={"scenario": str(scenario)}, timeout=30)
        resp.raise_for_status()

    def status(self) -> dict[str, Any]:
        """``python -m twin status --json``, the twin's own account of the world."""
        out = subprocess.run([sys.executable, "-m", "twin", "--home", str(self.home), "status", "--json"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60, check=True)
        return dict(json.loads(out.stdout))


@dataclass
class GateRun:
    wall: float
    start: float
    end: float
    returncode: int
    peak_rss_mb: float
    output: str
    verdict: dict[str, Any]


def make_twin(root: Path) -> Twin:
    home = root / "twin"
    control, data, grpc = (f"127.0.0.1:{p}" for p in free_ports(3))
    targets = root / "targets.toml"
    targets.write_text(relocate_sim(ROOT / "targets.toml", home, control, data, grpc))
    return Twin(root, home, control, data, grpc, targets)


def gate(twin: Twin, *args: str, targets: Path | None = None) -> GateRun:
    """The real gate as a child process; its rusage (peak RSS) from os.wait4 on its pid."""
    reports = twin.root / "reports"
    (reports / "journal.jsonl").unlink(missing_ok=True)  # each run starts from a world of its own
    cmd = [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider", "--targets-file",
           str(targets or twin.targets), "--reports-dir", str(reports), *args]
    log = twin.root / "gate.log"
    with log.open("w") as out:
        start, t0 = time.time(), time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall, end = time.perf_counter() - t0, time.time()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    verdict_file = reports / "verdict.json"
    verdict = json.loads(verdict_file.read_text()) if verdict_file.exists() else {}
    # ru_maxrss is in KiB on Linux
    return GateRun(wall, start, end, proc.returncode, usage.ru_maxrss / 1024, log.read_text(), verdict)


def union_within(spans: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Seconds of [lo, hi] covered by at least one span."""
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in spans if min(b, hi) > max(a, lo))
    total, cur_a, cur_b = 0.0, None, None
    for a, b in clipped:
        if cur_b is None or a > cur_b:
            if cur_b is not None and cur_a is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_a is not None and cur_b is not None:
        total += cur_b - cur_a
    return total


def split(status: dict[str, Any], lo: float, hi: float) -> dict[str, Any]:
    """Imposed seconds (by kind, and their union) and requests in [lo, hi)."""
    events = status["imposed"]["events"]
    by_kind = {k: union_within([(e["start"], e["end"]) for e in events if e["kind"] == k], lo, hi)
               for k in sorted({e["kind"] for e in events})}
    imposed = union_within([(e["start"], e["end"]) for e in events], lo, hi)
    timeline = [r for r in status["requests"]["timeline"] if lo <= r[0] < hi]
    writes = sum(1 for r in timeline if r[2])
    return {"wall": hi - lo, "imposed": imposed, "by_kind": by_kind, "reads": len(timeline) - writes,
            "writes": writes, "entries_list": sum(1 for r in timeline if r[1] == "logging.entries.list")}


def time_to_green(twin: Twin, runs: int) -> None:
    incident = twin.scenario("incident", (scale.SCENARIOS / "incident-1278.toml").read_text())
    print(f"incident-1278 → pytest tests --remediate --yes, {runs} run(s); metric_propagation_seconds "
          f"{FAST_PROPAGATION:g} (twin)")
    totals: list[dict[str, Any]] = []
    per_phase: dict[str, list[dict[str, Any]]] = {p: [] for p in PHASES}
    for i in range(runs):
        twin.reset(incident)
        run = gate(twin, "--remediate", "--yes")
        status = twin.status()
        verdict = run.verdict.get("verdict", "(no verdict.json)")
        print(f"\nrun {i + 1}: exit {run.returncode}, VERDICT {verdict}, peak RSS {run.peak_rss_mb:.0f} MB")
        if run.returncode != 0:
            print("  the gate did not end green; its last lines:")
            for line in run.output.strip().splitlines()[-8:]:
                print(f"    {line}")
        print(f"  {'phase':<8}{'wall s':>8}{'imposed s':>11}{'overhead s':>12}{'reads':>7}{'writes':>7}  imposed by kind")
        for phase in PHASES:
            times = run.verdict.get("phases", {}).get(phase)
            if times is None:
                continue
            part = split(status, times["start"], times["end"])
            per_phase[phase].append(part)
            _row(f"{phase}", part)
        whole = split(status, run.start, run.end)
        whole["wall"] = run.wall
        whole["requests"] = status["requests"]["reads"] + status["requests"]["writes"]
        whole["rss"] = run.peak_rss_mb
        totals.append(whole)
        _row("process", whole)
        print(f"  twin's totals by kind (status --json imposed.seconds): {json.dumps(status['imposed']['seconds'])}")
    print(f"\nmedians over {runs} run(s)")
    print(f"  {'phase':<8}{'wall s':>8}{'imposed s':>11}{'overhead s':>12}{'reads':>7}{'writes':>7}")
    for phase in PHASES:
        parts = per_phase[phase]
        if parts:
            _row(phase, {k: statistics.median(p[k] for p in parts) for k in ("wall", "imposed", "reads", "writes")})
    med = {k: statistics.median(t[k] for t in totals) for k in ("wall", "imposed", "requests", "rss")}
    print(f"  peak RSS of the gate process: median {med['rss']:.0f} MB, max {max(t['rss'] for t in totals):.0f} MB")
    print(f"wall_s={med['wall']:.2f} imposed_s={med['imposed']:.2f} overhead_s={med['wall'] - med['imposed']:.2f} "
          f"requests={med['requests']:.0f}")


def _row(name: str, part: dict[str, Any]) -> None:
    kinds = ", ".join(f"{k} {v:.2f}" for k, v in part.get("by_kind", {}).items() if v > 0)
    print(f"  {name:<8}{part['wall']:>8.2f}{part['imposed']:>11.2f}{part['wall'] - part['imposed']:>12.2f}"
          f"{part['reads']:>7.0f}{part['writes']:>7.0f}  {kinds}")


def busiest_minute(status: dict[str, Any], method: str) -> int:
    """The most calls of ``method`` in any 60 s window of the run (the quota's window)."""
    times = sorted(r[0] for r in status["requests"]["timeline"] if r[1] == method)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= 60:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def many_services(twin: Twin, services: int, runs: int) -> None:
    print(f"read-only full gate (pytest tests), healthy staging, {runs} run(s) each")
    print(f"{'services':>9}{'median s':>10}{'min s':>8}{'max s':>8}{'exit':>6}{'requests':>10}{'entries.list':>14}"
          f"{'/min':>6}{'RSS MB':>8}  outcomes (last run)")
    for n in (2, services):
        if n == 2:
            scenario, targets = twin.scenario("healthy", (scale.SCENARIOS / "healthy.toml").read_text()), twin.targets
        else:
            scenario = twin.scenario(f"healthy-{n}", scale.scenario_text("healthy", n))
            targets = twin.root / f"targets-{n}.toml"
            targets.write_text(scale.targets_text(twin.targets.read_text(), n, twin.data))
        walls, codes, reqs, logs, per_minute, rss = [], set(), [], [], [], []
        counts: dict[str, int] = {}
        for _ in range(runs):
            twin.reset(scenario)
            run = gate(twin, targets=targets)
            status = twin.status()
            walls.append(run.wall)
            codes.add(run.returncode)
            reqs.append(status["requests"]["reads"] + status["requests"]["writes"])
            logs.append(status["requests"]["by_method"].get("logging.entries.list", 0))
            per_minute.append(busiest_minute(status, "logging.entries.list"))
            rss.append(run.peak_rss_mb)
            counts = dict(run.verdict.get("counts", {}))
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "(no verdict.json)"
        print(f"{n:>9}{statistics.median(walls):>10.2f}{min(walls):>8.2f}{max(walls):>8.2f}"
              f"{'/'.join(map(str, sorted(codes))):>6}{statistics.median(reqs):>10.0f}{max(logs):>14}"
              f"{max(per_minute):>6}{max(rss):>8.0f}  {outcomes}")
    print("entries.list: the most Cloud Logging reads one run made; /min: the most of them in any 60 s window of a "
          "run (Google's quota: 60 a minute per project; the twin refuses the 61st). outcomes: verdict.json's counts; "
          "on healthy staging only Phase 4's four criteria fail (it has no monitoring yet): anything else failed or "
          "inconclusive is the gate's doing, not the world's.")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--services", type=int, default=None,
                        help="instead: the read-only full gate on 2 and on this many Cloud Run services")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        twin = make_twin(Path(tmp))
        try:
            # The first gate run starts the twin on demand; it is not measured.
            first = gate(twin, "-m", "phase1")
            if not (twin.home / "server.json").exists():
                raise SystemExit(f"bench: the twin did not start:\n{first.output}")
            if args.services:
                many_services(twin, args.services, args.runs)
            else:
                time_to_green(twin, args.runs)
        finally:
            stop(twin)


def stop(twin: Twin) -> None:
    """SIGTERM the twin and wait until it removed its server file (its world saved), so its home
    is not removed under it."""
    info = twin.home / "server.json"
    if not info.exists():
        return
    try:
        os.kill(json.loads(info.read_text())["pid"], signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while info.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


if __name__ == "__main__":
    main()
