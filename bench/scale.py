"""An N-service staging for the benchmarks and selftests: a twin scenario and the matching targets.

The scenario is a shipped one (``healthy`` or ``incident-1278``) whose backend service carries the
twin's ``replicas`` option (twin.scenario.Scenario: the service and N - 1 numbered copies, each with
its own revisions and hosts, on the backend's certificate). The targets file is the shipped `sim`
target relocated to the caller's twin (goldenpath.twinctl.relocate_sim) with one
``[[targets.sim.services]]`` per copy, as the backend's entry with the copy's name and hosts, and
the copies' hosts resolved to the twin's data plane.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "twin" / "scenarios"
BACKEND = "netra-backend-staging"
BACKEND_HOSTS = ("api.staging.netrasystems.ai", "api-staging.netrasystems.ai")


def copy_host(host: str, i: int) -> str:
    first, _, rest = host.partition(".")
    return f"{first}-{i:02d}.{rest}"


def scenario_text(base: str, services: int) -> str:
    """A scenario with ``services`` Cloud Run services in all: the base's auth service and
    ``services - 1`` backends (the base's backend and its copies)."""
    source = Path(base) if base.endswith(".toml") else SCENARIOS / f"{base}.toml"
    text = source.read_text()
    line = f'name = "{BACKEND}"\n'
    if line not in text:
        raise ValueError(f"{source} has no service {BACKEND!r} to replicate")
    backends = services - (len(re.findall(r"^\[\[services\]\]$", text, flags=re.M)) - 1)
    if backends < 1:
        raise ValueError(f"{services} services: the scenario has more services than that already")
    return text.replace(line, f"{line}replicas = {backends}\n", 1)


def targets_text(relocated: str, services: int, data: str) -> str:
    """The relocated `sim` targets text with a target service for every backend copy of
    :func:`scenario_text` (the same count), each host resolved to ``data`` (the data plane)."""
    lines = relocated.splitlines(keepends=True)
    start = lines.index("[[targets.sim.services]]\n")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("[["))
    backend = "".join(lines[start:end]).rstrip("\n") + "\n\n"
    extra, resolve = [], []
    copies = services - 1  # the auth service is one; the first backend is the target's own
    for i in range(2, copies + 1):
        block = backend.replace(f'name = "{BACKEND}"', f'name = "{BACKEND}-{i:02d}"')
        for host in BACKEND_HOSTS:
            block = block.replace(f"https://{host}/", f"https://{copy_host(host, i)}/")
            resolve.append(f'"{copy_host(host, i)}:443" = "{data}"\n')
        extra.append(block)
    twin_at = lines.index("[targets.sim.twin]\n")
    resolve_at = lines.index("[targets.sim.resolve]\n") + 1
    out = lines[:resolve_at] + resolve + lines[resolve_at:]
    out = out[:twin_at] + extra + out[twin_at:]
    return "".join(out)
