"""The files the gate writes beside the Allure results: environment, executor, categories."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from goldenpath.report import allure_files
from goldenpath.gate import Gate
from goldenpath import config as targets

ROOT = Path(__file__).resolve().parents[2]


def gate(name: str = "sim", mode: str = "off", consent: bool = False, rollback: bool = True) -> Gate:
    return Gate(target=targets.load(ROOT / "targets.toml", name), mode=mode, consent=consent,  # type: ignore[arg-type]
                rollback=rollback, reports=ROOT / "reports")


def test_environment_names_the_twin_and_the_mode() -> None:
    env = allure_files.environment(gate(), ROOT)
    assert env["Target"] == "sim"
    assert env["Infrastructure"].startswith("twin (rehearsal)")
    assert env["Project"] == "netra-staging" and env["Region"] == "us-central1"
    assert env["Services"] == "netra-backend-staging, auth-service-staging"
    assert env["Remediation"] == "off (read-only)"
    assert re.fullmatch(r"[0-9a-f]{4,40}( \(with uncommitted changes\))?|unknown", env["Git commit"])


def test_environment_of_a_real_target() -> None:
    env = allure_files.environment(gate("staging"), ROOT)
    assert env["Infrastructure"].startswith("real Google Cloud")


@pytest.mark.parametrize(("mode", "consent", "rollback", "text"), [
    ("plan", False, True, "plan (shows every change, makes none)"),
    ("apply", False, True, "apply, without --yes (reversible steps only)"),
    ("apply", True, True, "apply, with --yes (irreversible steps too)"),
    ("apply", True, False, "apply, with --yes (irreversible steps too); rollback OFF (--no-rollback)"),
])
def test_remediation_mode(mode: str, consent: bool, rollback: bool, text: str) -> None:
    assert allure_files.remediation(gate(mode=mode, consent=consent, rollback=rollback)) == text


def test_git_commit_outside_a_repository(tmp_path: Path) -> None:
    assert allure_files.git_commit(tmp_path) == "unknown"


def test_executor_from_github_actions() -> None:
    env = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "netra/goldenpath",
           "GITHUB_RUN_ID": "123", "GITHUB_RUN_NUMBER": "45", "GITHUB_RUN_ATTEMPT": "2", "GITHUB_WORKFLOW": "nightly"}
    out = allure_files.executor(gate(), env)
    assert out["name"] == "goldenpath" and out["type"] == "github"
    assert out["buildUrl"] == "https://github.com/netra/goldenpath/actions/runs/123/attempts/2"
    assert out["buildName"] == "nightly #45" and out["buildOrder"] == 45


def test_executor_locally() -> None:
    g = gate()
    out = allure_files.executor(g, {})
    assert out == {"name": "goldenpath", "reportName": "goldenpath — Issue #1278", "type": "local",
                   "buildName": f"goldenpath run {g.run_id}"}


def test_properties_escape_like_java() -> None:
    text = allure_files.properties({"Git commit": "a=b: c — d", "x": " lead\\tail\nnext"})
    assert text == "Git\\ commit=a\\=b\\: c \\u2014 d\nx=\\ lead\\\\tail\\nnext\n"
    assert text.isascii()


def test_write_puts_the_three_files_in_the_results(tmp_path: Path) -> None:
    allure_files.write(tmp_path / "results", gate(), ROOT)
    props = (tmp_path / "results" / "environment.properties").read_text()
    assert props.startswith("Target=sim\n") and "Remediation=off (read-only)" in props
    assert json.loads((tmp_path / "results" / "executor.json").read_text())["name"] == "goldenpath"
    categories = json.loads((tmp_path / "results" / "categories.json").read_text())
    assert [c["name"] for c in categories] == [
        "Escalation", "Remediation failed / rolled back", "Infrastructure failing a criterion",
        "Inconclusive (not enough evidence)", "The check itself broke (API or network error)"]


@pytest.mark.parametrize(("status", "message", "category"), [
    ("failed", "Failed: ESCALATE: service unavailable after Phase 1", "Escalation"),
    ("failed", "Failed: x: remediation was rolled back\nESCALATE: y", "Escalation"),
    ("failed", "Failed: netra-backend-staging: remediation was rolled back (verified)",
     "Remediation failed / rolled back"),
    ("failed", "Failed: remediation failed: 409 ABORTED", "Remediation failed / rolled back"),
    ("failed", "Failed: netra-backend-staging: 2 revisions serve traffic", "Infrastructure failing a criterion"),
    ("skipped", "fixtures.judge.Inconclusive: only 3 requests in the log", "Inconclusive (not enough evidence)"),
    ("skipped", "INCONCLUSIVE: only 3 requests in the log", "Inconclusive (not enough evidence)"),
    ("skipped", "Skipped: deselected by hand", None),
    ("broken", "ApiError: 403 PERMISSION_DENIED", "The check itself broke (API or network error)"),
])
def test_categories_first_match_wins(status: str, message: str, category: str | None) -> None:
    """As Allure 3 applies them (a RegExp search) and Allure 2 (a full match): the patterns are written
    so that both agree."""
    rules = json.loads(allure_files.CATEGORIES.read_text())

    def first(full: bool) -> str | None:
        for rule in rules:
            if status not in rule["matchedStatuses"]:
                continue
            pattern = rule.get("messageRegex")
            if pattern is None or (re.fullmatch(pattern, message) if full else re.search(pattern, message)):
                return rule["name"]
        return None

    assert first(full=False) == category
    assert first(full=True) == category
