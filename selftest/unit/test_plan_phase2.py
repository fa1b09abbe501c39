"""Phase-2 planning: connector capacity within the API's limits, database flags by merge, nothing more."""

from __future__ import annotations

import json
from typing import Any

from goldenpath.config import Target
from goldenpath.observations import ConnectorState, Phase2Observation, SqlInstanceState
from goldenpath.remediation.change import Change
from goldenpath.remediation.phase2 import FLAGS, RECREATE, RUNBOOK_MAX_INSTANCES, SCALE, plan

PROJECT, REGION = "netra-staging", "us-central1"
CONNECTOR = "staging-connector"
CONNECTOR_FULL = f"projects/{PROJECT}/locations/{REGION}/connectors/{CONNECTOR}"
INSTANCE = "netra-staging-db"
USERS = ("netra-backend-staging", "auth-service-staging")
# the instance's flags, in its own order: max_connections is not the only one
INCIDENT_FLAGS = (("max_connections", "100"), ("log_min_duration_statement", "1000"),
                  ("cloudsql.iam_authentication", "on"))


# ---- builders ------------------------------------------------------------------------------

def target(*, connector: dict[str, Any] | None = None, database: dict[str, Any] | None = None) -> Target:
    data: dict[str, Any] = {
        "project": PROJECT, "region": REGION, "credentials": "adc", "services": [{"name": USERS[0]}],
        "connector": {"name": CONNECTOR, "min_instances": 4, "max_instances": 10, "machine_type": "e2-standard-4"},
        "database": {"instance": INSTANCE, "max_connections": 200},
    }
    if connector is not None:
        data["connector"] = connector
    if database is not None:
        data["database"] = database
    return Target.model_validate(data)


def connector(min_instances: int = 2, max_instances: int = 3, machine_type: str = "e2-micro",
              state: str = "READY") -> ConnectorState:
    raw = {"name": CONNECTOR_FULL, "network": "default", "ipCidrRange": "10.8.0.0/28", "state": state,
           "minInstances": min_instances, "maxInstances": max_instances, "machineType": machine_type}
    return ConnectorState(name=CONNECTOR, full_name=CONNECTOR_FULL, state=state, machine_type=machine_type,
                          min_instances=min_instances, max_instances=max_instances, raw=raw)


def instance(*flags: tuple[str, str], settings_version: int = 41, tier: str = "db-custom-1-3840") -> SqlInstanceState:
    # db-custom-1-3840 (3.75 GB): the tier's default max_connections is 100, below the target's 200.
    return SqlInstanceState(name=INSTANCE, state="RUNNABLE", tier=tier,
                            settings_version=settings_version, flags=flags, raw={"name": INSTANCE})


def observe(conn: ConnectorState | None = None, inst: SqlInstanceState | None = None) -> Phase2Observation:
    return Phase2Observation(connector=conn, connector_users=USERS, instance=inst, backends=None,
                             connector_log=None, certificate=None, tls={})


def incident() -> Phase2Observation:
    """Runbook incident: connector READY 2-3 × e2-micro, Cloud SQL max_connections 100 among other flags."""
    return observe(connector(), instance(*INCIDENT_FLAGS))


def compliant() -> Phase2Observation:
    flags = (("max_connections", "200"),) + INCIDENT_FLAGS[1:]
    return observe(connector(4, 10, "e2-standard-4"), instance(*flags))


def step(changes: list[Change], name: str) -> Change:
    [found] = [c for c in changes if c.step == name]
    return found


# ---- the incident ----------------------------------------------------------------------------

def test_incident_plans_exactly_a_scale_and_a_flag_change() -> None:
    changes = plan(target(), incident())
    assert [(c.step, c.subject) for c in changes] == [(SCALE, CONNECTOR), (FLAGS, INSTANCE)]
    assert all(c.phase == 2 for c in changes)


def test_incident_scale_is_one_way_and_needs_consent() -> None:
    scale = step(plan(target(), incident()), SCALE)
    assert scale.resource == CONNECTOR_FULL
    assert scale.reversible is False
    assert scale.needs_consent is True
    assert "IRREVERSIBLE" in scale.risk and "needs --yes" in scale.risk


def test_incident_scale_asks_for_the_targets_valid_shape() -> None:
    scale = step(plan(target(), incident()), SCALE)
    assert scale.payload == {"connector": CONNECTOR,
                             "fields": {"maxInstances": 10, "minInstances": 4, "machineType": "e2-standard-4"}}
    assert scale.before == {"minInstances": 2, "maxInstances": 3, "machineType": "e2-micro"}
    assert scale.after == {"minInstances": 4, "maxInstances": 10, "machineType": "e2-standard-4"}
    assert "4-10 × e2-standard-4" in scale.summary and "now 2-3 × e2-micro" in scale.summary


def test_incident_scale_gcloud_uses_the_valid_flags() -> None:
    scale = step(plan(target(), incident()), SCALE)
    assert scale.gcloud == (
        f"gcloud compute networks vpc-access connectors update {CONNECTOR} --region={REGION} --project={PROJECT} "
        "--machine-type=e2-standard-4 --max-instances=10 --min-instances=4")
    assert "--max-instances=20" not in scale.gcloud


def test_incident_scale_explains_the_runbooks_impossible_20() -> None:
    scale = step(plan(target(), incident()), SCALE)
    assert RUNBOOK_MAX_INSTANCES == 20
    assert "--max-instances=20" in scale.why
    assert "3-10" in scale.why
    assert "one-way" in scale.why


def test_incident_flags_merge_max_connections_into_the_existing_list() -> None:
    flags = step(plan(target(), incident()), FLAGS)
    assert flags.resource == f"projects/{PROJECT}/instances/{INSTANCE}"
    assert flags.restarts is True and flags.reversible is True and flags.needs_consent is True
    assert "reversible, causes a restart, needs --yes" == flags.risk
    assert flags.payload["instance"] == INSTANCE
    assert [tuple(f) for f in flags.payload["flags"]] == [
        ("max_connections", "200"), ("log_min_duration_statement", "1000"), ("cloudsql.iam_authentication", "on")]
    assert [tuple(f) for f in flags.payload["restore"]] == list(INCIDENT_FLAGS)
    assert flags.payload["settings_version"] == 41


def test_incident_flags_before_and_after_show_the_whole_list() -> None:
    flags = step(plan(target(), incident()), FLAGS)
    assert flags.before == {"databaseFlags": [{"name": k, "value": v} for k, v in INCIDENT_FLAGS]}
    assert flags.after == {"databaseFlags": [
        {"name": "max_connections", "value": "200"}, {"name": "log_min_duration_statement", "value": "1000"},
        {"name": "cloudsql.iam_authentication", "value": "on"}]}
    assert "100 → 200" in flags.summary and "keeping 2 other flag(s)" in flags.summary


def test_incident_flags_gcloud_lists_all_three_flags() -> None:
    flags = step(plan(target(), incident()), FLAGS)
    assert flags.gcloud == (
        f"gcloud sql instances patch {INSTANCE} --project={PROJECT} --database-flags="
        "max_connections=200,log_min_duration_statement=1000,cloudsql.iam_authentication=on")


def test_incident_flags_explain_the_runbook_would_drop_the_others() -> None:
    flags = step(plan(target(), incident()), FLAGS)
    assert "--database-flags=max_connections=200" in flags.why
    assert "drop log_min_duration_statement, cloudsql.iam_authentication" in flags.why
    assert "settingsVersion 41" in flags.why
    assert "RESTART" in flags.why


def test_incident_plan_serialises() -> None:
    for change in plan(target(), incident()):
        data = json.loads(json.dumps(change.to_json()))
        assert data["needs_consent"] is True and data["step"] == change.step


# ---- a broken connector ----------------------------------------------------------------------

def test_connector_in_error_plans_one_destructive_recreate() -> None:
    changes = plan(target(), observe(connector(state="ERROR")))
    assert [c.step for c in changes] == [RECREATE]
    recreate = changes[0]
    assert recreate.subject == CONNECTOR and recreate.resource == CONNECTOR_FULL
    assert recreate.reversible is False and recreate.destructive is True and recreate.needs_consent is True
    assert "DESTRUCTIVE" in recreate.why
    for user in USERS:
        assert user in recreate.why


def test_recreate_keeps_the_spec_and_creates_the_targets_shape() -> None:
    recreate = plan(target(), observe(connector(state="ERROR")))[0]
    spec = recreate.payload["spec"]
    assert recreate.payload["connector"] == CONNECTOR
    assert spec["network"] == "default" and spec["ipCidrRange"] == "10.8.0.0/28"
    assert (spec["minInstances"], spec["maxInstances"], spec["machineType"]) == (4, 10, "e2-standard-4")
    assert recreate.gcloud.startswith(f"gcloud compute networks vpc-access connectors delete {CONNECTOR} ")
    assert (f"connectors create {CONNECTOR} --region={REGION} --project={PROJECT} --network=default "
            "--range=10.8.0.0/28 --min-instances=4 --max-instances=10 --machine-type=e2-standard-4") in recreate.gcloud


def test_connector_in_error_is_recreated_not_scaled() -> None:
    steps = [c.step for c in plan(target(), observe(connector(state="ERROR"), instance(*INCIDENT_FLAGS)))]
    assert steps == [RECREATE, FLAGS]


# ---- idempotency and restraint ---------------------------------------------------------------

def test_compliant_observation_plans_nothing() -> None:
    assert plan(target(), compliant()) == []


def test_the_plan_is_empty_once_its_changes_are_in_place() -> None:
    changes = plan(target(), incident())
    scale, flags = step(changes, SCALE), step(changes, FLAGS)
    after = observe(connector(scale.after["minInstances"], scale.after["maxInstances"], scale.after["machineType"]),
                    instance(*[tuple(f) for f in flags.payload["flags"]]))
    assert plan(target(), after) == []


def test_max_already_ten_asks_only_for_the_minimum() -> None:
    scale = step(plan(target(), observe(connector(2, 10, "e2-standard-4"))), SCALE)
    assert scale.payload["fields"] == {"minInstances": 4}
    assert scale.gcloud.endswith(f"--project={PROJECT} --min-instances=4")
    assert "updateMask=minInstances" in scale.why


def test_max_already_ten_with_another_machine_type_asks_for_minimum_and_type() -> None:
    scale = step(plan(target(), observe(connector(2, 10, "e2-micro"))), SCALE)
    assert scale.payload["fields"] == {"minInstances": 4, "machineType": "e2-standard-4"}
    assert "maxInstances" not in scale.payload["fields"]


def test_never_a_scale_down() -> None:
    # more than the target wants is left as it is: Serverless VPC Access cannot lower instance counts
    roomy = target(connector={"name": CONNECTOR, "min_instances": 2, "max_instances": 5})
    assert plan(roomy, observe(connector(6, 10, "e2-standard-4"))) == []


def test_no_machine_type_change_when_the_target_names_none() -> None:
    keep = target(connector={"name": CONNECTOR, "min_instances": 2, "max_instances": 10})
    scale = step(plan(keep, observe(connector(2, 3, "e2-micro"))), SCALE)
    assert scale.payload["fields"] == {"maxInstances": 10}
    assert "--machine-type" not in scale.gcloud


def test_flag_is_appended_when_the_instance_has_none_keeping_the_others() -> None:
    others = INCIDENT_FLAGS[1:]
    flags = step(plan(target(), observe(inst=instance(*others))), FLAGS)
    assert [tuple(f) for f in flags.payload["flags"]] == [*others, ("max_connections", "200")]
    assert [tuple(f) for f in flags.payload["restore"]] == list(others)
    assert "(default) → 200" in flags.summary
    assert flags.gcloud.endswith(
        "--database-flags=log_min_duration_statement=1000,cloudsql.iam_authentication=on,max_connections=200")


def test_instance_with_no_flags_at_all_gets_only_max_connections() -> None:
    flags = step(plan(target(), observe(inst=instance())), FLAGS)
    assert [tuple(f) for f in flags.payload["flags"]] == [("max_connections", "200")]
    assert flags.payload["restore"] == []
    assert "drop nothing" in flags.why


def test_no_flag_change_without_a_max_connections_in_the_target() -> None:
    no_max = target(database={"instance": INSTANCE})
    assert [c.step for c in plan(no_max, incident())] == [SCALE]


def test_nothing_is_planned_for_what_was_not_observed_or_not_targeted() -> None:
    assert plan(target(), observe()) == []
    bare = Target.model_validate({"project": PROJECT, "region": REGION, "services": [{"name": USERS[0]}]})
    assert plan(bare, incident()) == []


def test_max_connections_is_never_lowered() -> None:
    # A flag above the target, or a tier default above it, is left alone: no restart for nothing.
    assert plan(target(), observe(inst=instance(("max_connections", "400")))) == [] or \
        all(c.step != FLAGS for c in plan(target(), observe(inst=instance(("max_connections", "400")))))
    assert all(c.step != FLAGS for c in plan(target(), observe(inst=instance(tier="db-custom-8-30720"))))
