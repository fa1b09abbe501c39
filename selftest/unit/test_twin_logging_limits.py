"""The twin's Logging limits and transient faults, at given instants (no waiting on a real minute)."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin import logging
from twin.scenario import FaultSpec
from twin.store import ApiError, Store
from twin.world import World

T = 1_800_000_000.0


def test_the_read_quota_is_a_rolling_minute_of_admitted_calls(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.reset("healthy", now=T)
    for i in range(60):
        logging.admit_read(world, T + i * 0.5)  # 60 calls in half a minute
    with pytest.raises(ApiError) as err:
        logging.admit_read(world, T + 30)
    assert (err.value.code, err.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert err.value.message.startswith("Quota exceeded for quota metric 'Read requests' and limit "
                                        "'Read requests per minute' of service 'logging.googleapis.com'")
    assert err.value.body()["error"]["details"][0]["reason"] == "RATE_LIMIT_EXCEEDED"
    # Refused calls are not charged: a minute after the first call, one slot is free again, not zero.
    logging.admit_read(world, T + 60.01)
    with pytest.raises(ApiError):
        logging.admit_read(world, T + 60.02)
    # A reset starts a new minute.
    world.reset("healthy", now=T + 61)
    logging.admit_read(world, T + 61)


def test_the_read_quota_is_a_scenario_setting(tmp_path: Path) -> None:
    scenario = tmp_path / "tight.toml"
    healthy = (Path(logging.__file__).parent / "scenarios" / "healthy.toml").read_text()
    scenario.write_text(healthy + "\n[logging]\nread_requests_per_minute = 2\nentries_scanned_per_page = 5\n")
    world = World(tmp_path / "home")
    world.reset(str(scenario), now=T)
    assert logging.limits(world) == {"entries_scanned_per_page": 5, "read_requests_per_minute": 2}
    logging.admit_read(world, T)
    logging.admit_read(world, T + 1)
    with pytest.raises(ApiError):
        logging.admit_read(world, T + 2)


def test_a_fault_with_times_fails_that_many_calls_then_lets_them_through(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.state = {}
    store.seed_faults([FaultSpec(method="logging.entries.list", code=429, status="RESOURCE_EXHAUSTED",
                                 message="Quota exceeded.", after_calls=1, times=2)])
    outcomes = []
    for _ in range(5):
        hit = store.check_fault("logging.entries.list")
        outcomes.append(str(hit.refusal.code) if hit and hit.refusal else "ok")
    assert outcomes == ["ok", "429", "429", "ok", "ok"]
    assert store.state["faults"]["logging.entries.list"]["calls"] == 5
    assert store.state["faults"]["logging.entries.list"]["hits"] == 2


def test_page_tokens_are_opaque_and_checked() -> None:
    key = ("2027-01-15T08:00:00.000000Z", "0a1b2c")
    assert logging.decode_token(logging.encode_token(key)) == key
    for bad in ("12", "abc", logging.encode_token(("yesterday", "0a"))):
        with pytest.raises(ApiError) as err:
            logging.decode_token(bad)
        assert err.value.code == 400
