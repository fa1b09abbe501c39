"""The gate's pytest plugin, registered through the `goldenpath` distribution's pytest11 entry point.

Loaded before pytest reads the command line's paths, so the gate's options are known everywhere:
plain `pytest`, `.venv/bin/pytest` and `bin/gate` behave the same. (Temporary shape on this branch:
the hooks still live in fixtures/, loaded by conftest.py.)
"""

from __future__ import annotations

import pytest

from goldenpath import invocation


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("goldenpath", "goldenpath: the Issue #1278 gate")
    g.addoption("--target", dest="gp_target", default="sim", metavar="NAME",
                help="target from targets.toml (default: sim, the embedded twin)")
    g.addoption("--targets-file", dest="gp_targets_file", default=None, metavar="PATH",
                help="targets file (default: targets.toml in the project root)")
    g.addoption("--remediate", dest="gp_remediate", nargs="?", const="apply", default="off",
                choices=("apply", "plan"), metavar="plan",
                help="run the runbook's remediation steps in fixture setup; --remediate=plan shows every "
                     "change and makes none (default: read-only)")
    g.addoption("--yes", dest="gp_yes", action="store_true",
                help="consent to irreversible or restart-causing steps (revision deletion, database restart)")
    g.addoption("--no-rollback", dest="gp_no_rollback", action="store_true",
                help="keep a change even when the phase fails to verify after it (default: roll back)")
    g.addoption("--reports-dir", dest="gp_reports_dir", default=None, metavar="PATH",
                help="where the journal, plan, outcomes and verdict.json go (default: reports/)")
    g.addoption("--recover", dest="gp_recover", action="store_true",
                help="settle what an interrupted or failed remediation left (read from the journal): finish its "
                     "rollback, or restore the state before, or mark it resolved when the target already equals the "
                     "state before or after; then verify. Restarting steps need --yes as always")
    g.addoption("--break-lock", dest="gp_break_lock", action="store_true",
                help="take over a stale remediation lock (its process is gone); journaled")
    g.addoption("--soak", dest="gp_soak", nargs="?", const=15.0, default=None, type=float, metavar="MINUTES",
                help="Success Confirmation: wait (probing) until the 503 window is clean, at most MINUTES of the "
                     "target's time (default 15); without it a window that is not yet clean is inconclusive")



@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    # The first hook that sees the command line parsed with the options above known (see
    # goldenpath.invocation): a targets file outside the project no longer decides the rootdir.
    invocation.repair_rootdir(early_config, args)
    invocation.default_tests(early_config, args)
