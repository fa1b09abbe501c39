"""Reading the journal back: which changes an earlier run left unfinished; the target lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from goldenpath.config import load
from goldenpath.remediation import interrupted
from goldenpath.remediation.lock import Locked, TargetLock, alive

HOST = socket.gethostname()


def rec(run: str, event: str, pid: int = 999_999, step: str = "route-traffic", **extra: Any) -> dict[str, Any]:
    out = {"journal": 2, "run": run, "pid": pid, "host": HOST, "target": "sim", "event": event, **extra}
    if step and not event.startswith(("run.", "phase.")):
        out.update(phase=1, step=step, resource=f"services/{step}", summary=f"{step} change")
    elif event.startswith("phase."):
        out["phase"] = 1
    return out


def write(tmp_path: Path, records: list[dict[str, Any]]) -> Path:
    path = tmp_path / "journal.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def dead(_host: str, _pid: int) -> bool:
    return False


@pytest.mark.parametrize("last", ["apply.before", "apply.operation", "apply.failed", "apply.retry",
                                  "rollback.before", "rollback.after", "rollback.failed", "rollback.unverified"])
def test_a_dead_runs_change_that_stopped_here_is_unfinished(tmp_path: Path, last: str) -> None:
    path = write(tmp_path, [rec("A", "run.start"), rec("A", "apply.before"), rec("A", last)])
    found = interrupted.find(path, "sim", "NOW", dead)
    assert [(u.run, u.step, u.last["event"]) for u in found] == [("A", "route-traffic", last)]
    assert "an interrupted remediation (run A" in interrupted.paragraph(found)


@pytest.mark.parametrize("tail", [["apply.after", "phase.end"], ["apply.after", "rollback.before", "rollback.after",
                                                                   "rollback.verified"], ["apply.pending"]])
def test_a_change_that_got_to_its_end_is_not(tmp_path: Path, tail: list[str]) -> None:
    path = write(tmp_path, [rec("A", "apply.before")] + [rec("A", e) for e in tail])
    assert interrupted.find(path, "sim", "NOW", dead) == []


def test_applied_but_never_verified_is_unfinished_only_without_phase_end(tmp_path: Path) -> None:
    path = write(tmp_path, [rec("A", "apply.before"), rec("A", "apply.after")])
    assert len(interrupted.find(path, "sim", "NOW", dead)) == 1


def test_reconciled_unknown_is_unfinished_not_landed_is_not(tmp_path: Path) -> None:
    path = write(tmp_path, [rec("A", "apply.before"), rec("A", "apply.failed"), rec("A", "apply.reconciled", found="unknown"),
                            rec("B", "apply.before", step="other"), rec("B", "apply.failed", step="other"),
                            rec("B", "apply.reconciled", step="other", found="not landed")])
    assert [u.run for u in interrupted.find(path, "sim", "NOW", dead)] == ["A"]


def test_a_live_run_the_current_run_another_target_and_old_records_do_not_count(tmp_path: Path) -> None:
    old = {k: v for k, v in rec("OLD", "apply.before").items() if k != "journal"}
    other = {**rec("C", "apply.before"), "target": "prod"}
    path = write(tmp_path, [rec("LIVE", "apply.before", pid=os.getpid()), rec("NOW", "apply.before"), old, other])
    assert interrupted.find(path, "sim", "NOW") == []


def test_a_recover_resolved_record_settles_it(tmp_path: Path) -> None:
    key = {"run": "A", "phase": 1, "step": "route-traffic", "resource": "services/route-traffic"}
    path = write(tmp_path, [rec("A", "apply.before"), rec("A", "rollback.before"),
                            rec("R", "recover.resolved", recovers=key)])
    assert interrupted.find(path, "sim", "NOW", dead) == []


def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, [rec("A", "apply.before")])
    with path.open("a") as fh:
        fh.write('{"journal": 2, "run": "A", "ev')
    assert len(interrupted.find(path, "sim", "NOW", dead)) == 1


# ---- the lock ---------------------------------------------------------------------------------

@pytest.fixture
def target(tmp_path: Path) -> Any:
    (tmp_path / "targets.toml").write_text(
        '[targets.real]\nproject = "p"\nregion = "r"\nservices = [{ name = "s" }]\n')
    return load(tmp_path / "targets.toml", "real")


def test_a_second_run_is_refused_naming_the_holder(target: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLDENPATH_STATE_DIR", str(tmp_path / "state"))
    first = TargetLock(target, "run-1", "alice", tmp_path / "j")
    assert first.acquire(False) is None
    second = TargetLock(target, "run-2", "bob", tmp_path / "j")
    with pytest.raises(Locked, match=r"Another remediation of target 'real' is running: run run-1 of alice"):
        second.acquire(True)  # a live holder is never broken, not even with --break-lock
    first.release()
    assert second.acquire(False) is None
    second.release()
    assert not first.path.exists()


def test_a_stale_lock_is_taken_over_only_when_asked(target: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLDENPATH_STATE_DIR", str(tmp_path / "state"))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(gone.stdout)  # a process that has exited
    lock = TargetLock(target, "run-2", "bob", tmp_path / "j")
    lock.path.parent.mkdir(parents=True)
    lock.path.write_text(json.dumps({"run": "run-1", "identity": "alice", "host": HOST, "pid": pid,
                                     "started": "then", "journal": "j"}))
    assert alive(HOST, pid) is False
    with pytest.raises(Locked, match="stale remediation lock.*--recover.*--break-lock"):
        lock.acquire(False)
    recovered = lock.acquire(False, takeover=frozenset({"run-1"}))
    assert recovered is not None and recovered.run == "run-1"  # --recover of that run
    lock.release()
    lock.path.write_text(json.dumps({"run": "run-1", "identity": "alice", "host": HOST, "pid": pid,
                                     "started": "then", "journal": "j"}))
    broken = lock.acquire(True)
    assert broken is not None and broken.run == "run-1"  # --break-lock
