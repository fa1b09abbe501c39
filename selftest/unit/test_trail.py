"""The debug trail: capture per block, redaction of what is logged, live logs under -v."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from goldenpath import trail
from goldenpath.redact import HIDDEN, redact_secrets, scrub_text
from goldenpath.remediation.journal import Journal
from goldenpath.remediation.runner import Runner
from selftest.unit.test_runner import FakeRemedy, route

ROOT = Path(__file__).resolve().parents[2]
PLANTED = "planted-env-value-9f3e1c"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.planted-token"


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# ---- capture -------------------------------------------------------------------------------------

def test_capture_collects_every_goldenpath_record_with_relative_time_and_logger_name() -> None:
    log = trail.logger("unit.capture")
    log.debug("before the capture")
    with trail.capture() as captured:
        log.debug("a read %s", "services.get")
        trail.logger("unit.other").info("a decision")
        thread = threading.Thread(target=lambda: log.debug("from another thread"))
        thread.start()
        thread.join()
        logging.getLogger("not.goldenpath").warning("someone else's record")
    log.debug("after the capture")
    lines = captured.text().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("+") and "s DEBUG" in lines[0]
    assert lines[0].endswith("goldenpath.unit.capture  a read services.get")
    assert "INFO" in lines[1] and "goldenpath.unit.other  a decision" in lines[1]
    assert lines[2].endswith("from another thread")


def test_nested_captures_each_get_what_was_logged_while_open() -> None:
    log = trail.logger("unit.nested")
    with trail.capture() as outer:
        log.info("one")
        with trail.capture() as inner:
            log.info("two")
        log.info("three")
    assert [ln.rsplit("  ", 1)[1] for ln in outer.text().splitlines()] == ["one", "two", "three"]
    assert [ln.rsplit("  ", 1)[1] for ln in inner.text().splitlines()] == ["two"]
    assert logging.getLogger("goldenpath").level == logging.NOTSET  # restored
    assert logging.getLogger("goldenpath").propagate is True


def test_a_capture_does_not_push_debug_records_to_the_root_handlers() -> None:
    """What the terminal (pytest's handlers on the root logger) shows does not change because a
    phase's trail is being captured: DEBUG reaches them only if the root logger lets it."""
    root = logging.getLogger()
    seen = Collect()
    saved = root.level
    root.addHandler(seen)
    try:
        root.setLevel(logging.WARNING)
        with trail.capture() as captured:
            trail.logger("unit.forward").debug("a read")
            trail.logger("unit.forward").warning("a refusal")
        assert [r.getMessage() for r in seen.records] == ["a refusal"]
        assert "a read" in captured.text()
        seen.records.clear()
        root.setLevel(logging.DEBUG)  # as pytest's catching_logs does for --log-cli-level=DEBUG
        with trail.capture():
            trail.logger("unit.forward").debug("a read")
        assert [r.getMessage() for r in seen.records] == ["a read"]
    finally:
        root.removeHandler(seen)
        root.setLevel(saved)


# ---- redaction -----------------------------------------------------------------------------------

def test_a_secret_planted_in_a_logged_structure_never_reaches_the_trail() -> None:
    payload = {
        "service": "auth-service-staging",
        "template": {"containers": [{"env": [{"name": "STRIPE_KEY", "value": PLANTED},
                                             {"name": "DEMO_MODE", "value": "0"}]}]},
        "headers": {"Authorization": f"Bearer {TOKEN}"},
        "login": {"email": "someone@example.com", "password": "hunter2-planted"},
    }
    with trail.capture() as captured:
        trail.logger("unit.redact").debug("apply: payload %s", payload, extra={"keep_env": frozenset({"DEMO_MODE"})})
        trail.logger("unit.redact").debug("sent %s", f"Authorization: Bearer {TOKEN}")
        trail.logger("unit.redact").debug("mapping %(body)s", {"body": {"token": TOKEN}})
    text = captured.text()
    for secret in (PLANTED, TOKEN, "hunter2-planted"):
        assert secret not in text, text
    assert "STRIPE_KEY" in text and HIDDEN in text  # the name is shown, the value is not
    assert "'DEMO_MODE', 'value': '0'" in text  # a required variable's value stays readable
    assert "auth-service-staging" in text


def test_hidden_values_are_masked_in_any_record() -> None:
    trail.hide("rehearsal-password-planted")
    with trail.capture() as captured:
        trail.logger("unit.hide").info("login answered: bad password rehearsal-password-planted (%d)", 401)
    assert "rehearsal-password-planted" not in captured.text()
    assert "(401)" in captured.text()


def test_scrub_text_masks_credential_shapes_and_leaves_the_rest() -> None:
    text = scrub_text(f'{{"Authorization": "Bearer {TOKEN}"}} password=pw1 x-api-key: k1 revision 00311-k8x')
    assert TOKEN not in text and "pw1" not in text and "k1 " not in text
    assert "revision 00311-k8x" in text
    assert redact_secrets({"env": {"A": "x", "DEMO_MODE": "0"}, "client_secret": "y"}, {"DEMO_MODE"}) == \
        {"env": {"A": HIDDEN, "DEMO_MODE": "0"}, "client_secret": HIDDEN}


# ---- decisions -----------------------------------------------------------------------------------

def test_the_runner_logs_its_plan_each_apply_and_the_phase_end(tmp_path: Path) -> None:
    change = route("svc-a")
    change.payload["env"] = [["STRIPE_KEY", PLANTED]]
    remedy = FakeRemedy([change])
    j = Journal(tmp_path / "journal.jsonl", "sim", "me", "run-1")
    with trail.capture() as captured:
        out = Runner(remedy, j, consent=True, rollback=True).run("apply")
    assert out.applied == [change]
    text = captured.text()
    assert "goldenpath.remediation  phase 1 plan (apply): route svc-a" in text
    assert "goldenpath.remediation  apply route svc-a (attempt 1) on services/svc-a" in text
    assert "goldenpath.remediation  applied route svc-a in" in text
    assert "goldenpath.remediation  phase 1 remediation (apply) ended in" in text
    assert "STRIPE_KEY" in text and PLANTED not in text


# ---- live logs under -v ----------------------------------------------------------------------------

def config(verbose: int, level: str | None = None, ini: dict[str, Any] | None = None) -> Any:
    values = {"log_cli": False, "log_cli_level": None, **(ini or {})}
    return SimpleNamespace(option=SimpleNamespace(log_cli_level=level), get_verbosity=lambda: verbose,
                           getini=values.__getitem__)


@pytest.mark.parametrize("verbose, given, expected", [
    (0, None, None), (1, None, "INFO"), (2, None, "DEBUG"), (1, "WARNING", "WARNING"), (2, "INFO", "INFO")])
def test_live_sets_a_level_only_under_v_and_only_when_none_was_given(verbose: int, given: str | None,
                                                                     expected: str | None) -> None:
    cfg = config(verbose, given)
    trail.live(cfg)
    assert cfg.option.log_cli_level == expected


def test_live_keeps_the_ini_files_choice() -> None:
    cfg = config(1, ini={"log_cli_level": "WARNING"})
    trail.live(cfg)
    assert cfg.option.log_cli_level == "WARNING"
    cfg = config(1, ini={"log_cli": True})
    trail.live(cfg)
    assert cfg.option.log_cli_level is None


def test_live_makes_pytest_v_show_the_trail(tmp_path: Path) -> None:
    """pytest's own logging plugin (its trylast pytest_configure) picks the level up: -v shows the
    INFO records live, -vv the DEBUG ones too, plain runs show none."""
    (tmp_path / "conftest.py").write_text(textwrap.dedent("""
        from goldenpath import trail

        def pytest_configure(config):
            trail.live(config)
    """))
    (tmp_path / "test_x.py").write_text(textwrap.dedent("""
        from goldenpath import trail

        def test_x():
            with trail.capture():
                trail.logger("probes").info("a probe %s", "ok")
                trail.logger("gcp.run").debug("a read %s", "services.get")
    """))

    def run(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
                               "--rootdir", str(tmp_path), *args, str(tmp_path / "test_x.py")],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    plain, v, vv = run("-q"), run("-v"), run("-vv")
    assert "a probe ok" not in plain and "live log" not in plain
    assert "a probe ok" in v and "a read services.get" not in v
    assert "a probe ok" in vv and "a read services.get" in vv
