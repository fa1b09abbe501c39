"""Time to a verdict on the twin, and how many API requests it took. Prints numbers.

The "entries.list" column is the most Cloud Logging reads one run made (logging.entries.list, from
the twin's requests.by_method), and "/min" the most the twin's read quota had admitted in the last
minute of a run (logging.entries_list_last_minute, read as it ends; the reset before each run empties
it): Google allows 60 a minute per project, and the twin refuses the 61st.

    .venv/bin/python bench/phase1_verdict.py [--runs 3] [-m "phase1 or phase2 or phase3"]

Runs the real gate (`pytest -m phase1` by default, read-only) as a subprocess against a twin of its own (free
loopback ports, temporary home), on the healthy and the incident scenario. The first run of all
includes starting the twin; it is reported apart. Nothing here asserts: it measures.
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
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from goldenpath.twinctl import free_ports, relocate_sim  # noqa: E402


def gate(targets: Path, reports: Path, marker: str) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "pytest", "tests", "-m", marker, "-q", "-p", "no:cacheprovider",
           "--targets-file", str(targets), "--reports-dir", str(reports)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ))  # the sim target needs no exported variable
    return time.perf_counter() - t0, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("-m", dest="marker", default="phase1", help="marker expression (default phase1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home = root / "twin"
        control, data, grpc = (f"127.0.0.1:{p}" for p in free_ports(3))
        targets = root / "targets.toml"
        targets.write_text(relocate_sim(ROOT / "targets.toml", home, control, data, grpc))
        try:
            print(f"pytest -m {args.marker!r}")
            cold, _ = gate(targets, root / "reports", args.marker)
            print(f"first run, twin started on demand: {cold:.2f} s")
            print(f"{'scenario':<16}{'median s':>10}{'min s':>8}{'max s':>8}{'exit':>6}{'reads':>7}{'writes':>7}"
                  f"{'entries.list':>14}{'/min':>6}")
            for scenario in ("healthy", "incident-1278"):
                times, codes, reads, writes, logs, per_minute = [], set(), [], [], [], []
                for _ in range(args.runs):
                    httpx.post(f"http://{control}/_twin/reset", params={"scenario": scenario}, timeout=10)
                    seconds, code = gate(targets, root / "reports", args.marker)
                    status = httpx.get(f"http://{control}/_twin/status", timeout=10).json()
                    req = status["requests"]
                    times.append(seconds)
                    codes.add(code)
                    reads.append(req["reads"])
                    writes.append(req["writes"])
                    logs.append(req["by_method"].get("logging.entries.list", 0))
                    per_minute.append(status["logging"]["entries_list_last_minute"])
                print(f"{scenario:<16}{statistics.median(times):>10.2f}{min(times):>8.2f}{max(times):>8.2f}"
                      f"{'/'.join(map(str, sorted(codes))):>6}{statistics.median(reads):>7.0f}"
                      f"{statistics.median(writes):>7.0f}{max(logs):>14}{max(per_minute):>6}")
            by_method = httpx.get(f"http://{control}/_twin/status", timeout=10).json()["requests"]["by_method"]
            print("requests of the last run by method:", json.dumps(by_method))
        finally:
            info = home / "server.json"
            if info.exists():
                os.kill(json.loads(info.read_text())["pid"], signal.SIGTERM)


if __name__ == "__main__":
    main()
