"""How the gate is started: plain `pytest`, `.venv/bin/pytest` and `bin/gate`, from the project or
from elsewhere, with the targets file and the reports outside the project, in both argument forms.

pytest decides its rootdir from the arguments that look like paths before it loads any plugin, so a
targets file outside the project used to make pytest ignore the project's settings (goldenpath
.invocation). These run the real gate, as an operator would, and check what it collected, where it
wrote, and that the twin's own rehearsal account needs no exported variable.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from selftest.conftest import ROOT, Run, Sandbox

PYTEST = str(Path(sys.executable).parent / "pytest")
GATE = str(ROOT / "bin" / "gate")
# The gate's own tests (tests/), never the selftests (selftest/) nor anything in the caller's folder.
GATE_TESTS = re.compile(r"^tests/(phase[1-4]|confirmation)/test_\w+\.py::")


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> Run:
    # No GOLDENPATH_* variable reaches the gate: the sim target must not need one.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GOLDENPATH_")}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={**clean, **(env or {})})
    return Run(proc.returncode, proc.stdout, proc.stderr)


def collected(out: str) -> list[str]:
    return [line for line in out.splitlines() if "::" in line and not line.startswith(("ERROR", "FAILED"))]


def assert_gate_collected(r: Run) -> list[str]:
    ids = collected(r.stdout)
    assert ids, r.output
    stray = [i for i in ids if not GATE_TESTS.match(i)]
    assert stray == [], f"collected outside the gate's tests: {stray[:5]}\n{r.output[-2000:]}"
    return ids


@pytest.mark.parametrize("form", ["space", "equals"])
@pytest.mark.parametrize("command", ["pytest", "python -m pytest", "bin/gate"])
def test_outside_targets_and_reports_from_the_project_folder(healthy: Sandbox, tmp_path: Path, form: str,
                                                             command: str) -> None:
    reports = tmp_path / "elsewhere" / "reports"
    reports.parent.mkdir()
    opts = {"--targets-file": str(healthy.targets), "--reports-dir": str(reports)}
    args = [a for k, v in opts.items() for a in ((k, v) if form == "space" else (f"{k}={v}",))]
    cmd = {"pytest": [PYTEST], "python -m pytest": [sys.executable, "-m", "pytest"], "bin/gate": [GATE]}[command]
    r = run([*cmd, *args, "-m", "phase1"], cwd=ROOT)
    assert r.returncode == 0, r.output
    assert f"rootdir: {ROOT}" in r.stdout and "configfile: pyproject.toml" in r.stdout, r.stdout[:1500]
    assert "6 passed, 24 deselected" in r.stdout, r.output
    verdict = json.loads((reports / "verdict.json").read_text())
    assert verdict["target"]["name"] == "sim" and verdict["counts"] == {"passed": 6}
    ids = [c["test"] for c in verdict["criteria"]]
    assert len(ids) == 6 and all(GATE_TESTS.match(i) for i in ids), ids
    assert f"journal {reports / 'journal.jsonl'}" in r.stdout


def test_every_way_in_collects_the_same_tests(healthy: Sandbox) -> None:
    seen = {}
    for name, cmd in {"pytest": [PYTEST], "python -m pytest": [sys.executable, "-m", "pytest"],
                      "bin/gate": [GATE]}.items():
        r = run([*cmd, "--targets-file", str(healthy.targets), "--co", "-q"], cwd=ROOT)
        assert r.returncode == 0, r.output
        seen[name] = assert_gate_collected(r)
    assert seen["pytest"] == seen["python -m pytest"] == seen["bin/gate"]


def test_relative_paths_are_the_callers_from_another_folder(healthy: Sandbox, tmp_path: Path) -> None:
    # An infrastructure repository of its own, the gate installed elsewhere: bin/gate from there.
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "staging.toml").write_text(healthy.targets.read_text())
    (infra / "out").mkdir()
    project_reports = sorted(p.name for p in (ROOT / "reports").iterdir())
    r = run([GATE, "--targets-file", "staging.toml", "--reports-dir", "out/gate", "--junitxml", "out/junit.xml",
             "--alluredir", "out/allure", "-m", "phase1"], cwd=infra)
    assert r.returncode == 0, r.output
    assert f"rootdir: {ROOT}" in r.stdout
    assert (infra / "out" / "gate" / "verdict.json").is_file()
    assert "<testsuite" in (infra / "out" / "junit.xml").read_text()
    assert list((infra / "out" / "allure").glob("*-result.json"))
    assert sorted(p.name for p in (ROOT / "reports").iterdir()) == project_reports  # nothing written there
    # No test path given: the gate's tests, not the caller's folder (which holds none).
    r = run([GATE, "--targets-file=staging.toml", "--reports-dir=out/gate", "--co", "-q"], cwd=infra)
    assert r.returncode == 0, r.output
    assert_gate_collected(r)


def test_plain_pytest_walks_the_golden_path_with_the_twins_own_account(healthy: Sandbox) -> None:
    # Nothing exported (run() drops every GOLDENPATH_ variable): the sim target's account is the twin's.
    r = run([PYTEST, "--targets-file", str(healthy.targets), "--reports-dir", str(healthy.reports), "-m", "phase3",
             "-k", "golden_path", "-rA"], cwd=ROOT)
    assert r.returncode == 0, r.output
    assert r.outcome("test_golden_path_end_to_end") == "PASSED", r.output
    assert "rehearsal-only-not-a-secret" not in r.output
