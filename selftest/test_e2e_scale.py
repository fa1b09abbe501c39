"""Many services (bench/scale.py): the read-only gate on healthy staging with 20 Cloud Run services
must judge it as it judges 2. Its own load must not show in what it measures (20 bursts at once
made healthy endpoints measure 3–4 s: goldenpath.probes.slots), and Logging's searches must finish
(each log named on an indexed field). On healthy staging only Phase 4's four criteria fail: it has
no monitoring yet."""

from __future__ import annotations

import json

from bench import scale
from selftest.conftest import Sandbox

SERVICES = 20
PHASE4 = {"test_error_monitoring_active", "test_alert_policies_configured", "test_capacity_thresholds_established",
          "test_dashboard_operational"}


def test_twenty_healthy_services_are_judged_healthy(healthy: Sandbox) -> None:
    scenario = healthy.root / f"healthy-{SERVICES}.toml"
    scenario.write_text(scale.scenario_text("healthy", SERVICES))
    healthy.reset(str(scenario))
    targets = healthy.root / f"targets-{SERVICES}.toml"
    targets.write_text(scale.targets_text(healthy.targets.read_text(), SERVICES, healthy.data))

    run = healthy.gate("-rA", "-q", targets=targets)
    verdict = json.loads((healthy.reports / "verdict.json").read_text())
    bad = {t["test"]: (t["outcome"], t["message"][:200]) for t in verdict["criteria"] if t["outcome"] != "passed"}
    assert {n.split("::")[-1] for n in bad} == PHASE4, json.dumps(bad, indent=1)[:4000]
    assert verdict["counts"] == {"passed": len(verdict["criteria"]) - 4, "failed": 4}
    assert not verdict.get("sources"), verdict["sources"]  # every source was read
    # every service's burst ran and was judged
    health = [t for t in verdict["criteria"] if "test_health_endpoint_fast[" in t["test"]]
    assert len(health) == SERVICES - 1 and all(t["outcome"] == "passed" for t in health)
    assert run.returncode == 1  # Phase 4's failures
