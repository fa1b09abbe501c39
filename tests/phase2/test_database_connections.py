"""Runbook, Phase 2 success metric: "Database connections < 75% utilization"."""

import allure
import pytest

from fixtures.judge import judge, require
from goldenpath.criteria import phase2 as c

pytestmark = pytest.mark.phase2


@allure.story(c.TITLES[c.DB_CONNECTIONS])
@allure.severity(allure.severity_level.CRITICAL)
def test_database_connections_below_75_percent(phase2, gate):
    require(gate.target.database, "database", gate.target.name)
    judge(c.db_connections(phase2.instance, phase2.backends, gate.target.thresholds, phase2.backends_since))
