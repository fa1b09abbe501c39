"""What the gate writes down shows environment names, and values only for the required settings."""

from __future__ import annotations

from goldenpath.redact import HIDDEN, redact


def test_env_values_are_hidden_unless_required() -> None:
    record = {
        "payload": {
            "env": [["DEMO_MODE", "0"], ["JWT_SECRET", "s3cr3t"]],
            "restore_env": [("OTHER", "value")],
            "spec": {"containers": [{"env": [{"name": "JWT_SECRET", "value": "s3cr3t"},
                                             {"name": "DEMO_MODE", "value": "1"},
                                             {"name": "FROM_SECRET", "valueSource": {"secretKeyRef": {}}}]}]},
        },
        "before": {"env": {"DEMO_MODE": "1"}},
    }
    out = redact(record, {"DEMO_MODE"})
    assert out["payload"]["env"] == [["DEMO_MODE", "0"], ["JWT_SECRET", HIDDEN]]
    assert out["payload"]["restore_env"] == [["OTHER", HIDDEN]]
    assert out["payload"]["spec"]["containers"][0]["env"] == [
        {"name": "JWT_SECRET", "value": HIDDEN}, {"name": "DEMO_MODE", "value": "1"},
        {"name": "FROM_SECRET", "valueSource": {"secretKeyRef": {}}}]
    assert out["before"] == {"env": {"DEMO_MODE": "1"}}
    assert "s3cr3t" not in repr(out)


def test_everything_else_is_untouched() -> None:
    record = {"traffic": [{"revision": "a", "percent": 100}], "flags": [["max_connections", "200"]]}
    assert redact(record, ()) == record
