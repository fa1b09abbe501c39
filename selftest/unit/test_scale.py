"""The N-service scenario (twin.scenario's ``replicas`` option, bench/scale.py): the twin serves N
Cloud Run services, each answering on its own host, and the targets file names them all."""

from __future__ import annotations

from pathlib import Path

from bench import scale
from goldenpath.config import load
from goldenpath.twinctl import relocate_sim
from twin.world import World

ROOT = Path(__file__).resolve().parents[2]


def test_a_twenty_service_scenario_serves_twenty_services(tmp_path: Path) -> None:
    scenario = tmp_path / "healthy-20.toml"
    scenario.write_text(scale.scenario_text("healthy", 20))
    world = World(tmp_path / "home")
    world.reset(str(scenario))
    names = [s["name"].rsplit("/", 1)[-1] for s in world.status()["run"]["services"]]
    assert len(names) == len(set(names)) == 20
    for i in range(2, 20):
        name = f"netra-backend-staging-{i:02d}"
        assert name in names
        answer = world.serve(scale.copy_host("api.staging.netrasystems.ai", i), "/health")
        assert answer.status == 200 and answer.body["revision"].startswith(name + "-"), answer
    # each copy's host is on the backend's certificate, so its TLS verifies as the original's
    domains = world.state["certificates"]["staging-ssl-cert"]["resource"]["managed"]["domains"]
    assert {scale.copy_host(h, 19) for h in scale.BACKEND_HOSTS} <= set(domains)

    targets = tmp_path / "targets.toml"
    targets.write_text(scale.targets_text(relocate_sim(ROOT / "targets.toml", tmp_path / "home", "127.0.0.1:1",
                                                       "127.0.0.1:2", "127.0.0.1:3"), 20, "127.0.0.1:2"))
    target = load(targets, "sim")
    assert sorted(s.name for s in target.services) == sorted(names)
