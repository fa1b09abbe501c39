"""``python -m twin serve | reset | status | stop``: run and steer the embedded staging twin."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_HOME = Path(os.environ.get("GOLDENPATH_TWIN_HOME", Path(__file__).resolve().parent.parent / ".twin"))
DEFAULT_CONTROL = "127.0.0.1:18780"
DEFAULT_DATA = "127.0.0.1:18743"
DEFAULT_GRPC = "127.0.0.1:18781"
SERVER_FILE = "server.json"


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: the twin listens on loopback only (127.0.0.1:PORT)") from None
    return host, int(port)


def _running(home: Path) -> dict[str, Any] | None:
    """The running twin's address, if its server file names a live process that answers."""
    info_path = home / SERVER_FILE
    if not info_path.exists():
        return None
    info = json.loads(info_path.read_text())
    try:
        with urllib.request.urlopen(f"http://{info['control']}/_twin/health", timeout=2):
            return info
    except (urllib.error.URLError, OSError):
        return None


def _call(info: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    req = urllib.request.Request(f"http://{info['control']}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"twin: {json.loads(exc.read()).get('error', exc)}") from None


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from twin import certs
    from twin.grpcserver import serve_grpc
    from twin.server import control_app, data_app
    from twin.world import Twin

    home: Path = args.home
    if _running(home):
        print(f"twin: already running for {home} (see {home / SERVER_FILE}); `python -m twin stop` first", file=sys.stderr)
        return 1
    twin = Twin(home, args.scenario)
    ca = certs.load_ca(home)
    hosts = [h for s in twin.world.state["services"].values() for h in s["hosts"]] or ["localhost"]
    (chost, cport), (dhost, dport), (ghost, gport) = args.control, args.data, args.grpc
    # Idle connections stay open longer than uvicorn's 5 s default: the discovery clients (httplib2)
    # reuse a pooled connection without checking it, and a PATCH on one the server has closed fails
    # with a connection reset instead of being retried (seen when a gate run pauses between calls).
    control = uvicorn.Server(uvicorn.Config(control_app(twin), host=chost, port=cport, log_level="warning",
                                            lifespan="off", timeout_keep_alive=120))
    data_cfg = uvicorn.Config(data_app(twin), host=dhost, port=dport, log_level="warning", lifespan="off",
                              timeout_keep_alive=30)
    data_cfg.load()
    # SNI-aware, and reads the world's certificates at each handshake; uvicorn's own options cannot do that.
    data_cfg.ssl = certs.server_context(ca, hosts[0], lambda: twin.world.state.get("certificates", {}))
    data = uvicorn.Server(data_cfg)

    async def main() -> None:
        flusher = asyncio.create_task(twin.flush_forever())
        info = {"pid": os.getpid(), "control": f"{chost}:{cport}", "data": f"{dhost}:{dport}",
                "grpc": f"{ghost}:{gport}", "ca": str(home / certs.CA_CERT)}
        (home / SERVER_FILE).write_text(json.dumps(info))
        print(f"twin: control plane http://{chost}:{cport} (REST), {ghost}:{gport} (gRPC)  "
              f"data plane https://{dhost}:{dport}  "
              f"scenario {twin.world.state['scenario']}  home {home}", flush=True)
        try:
            await asyncio.gather(control.serve(), data.serve(), serve_grpc(twin, ghost, gport, control))
        finally:
            flusher.cancel()
            twin.world.save()
            (home / SERVER_FILE).unlink(missing_ok=True)

    asyncio.run(main())
    return 0


def reset(args: argparse.Namespace) -> int:
    info = _running(args.home)
    if info:
        from urllib.parse import quote

        query = f"?clock_scale={args.clock_scale:g}" + (f"&scenario={quote(args.scenario)}" if args.scenario else "")
        out = _call(info, "POST", f"/_twin/reset{query}")
        fast = f", clock ×{out['clock_scale']:g}" if out.get("clock_scale", 1) != 1 else ""
        print(f"twin: reset to scenario {out['scenario']}{fast} (running twin at {info['control']})")
        return 0
    from twin.scenario import ScenarioError
    from twin.world import World

    world = World(args.home)
    try:
        world.reset(args.scenario, clock_scale=args.clock_scale)
    except ScenarioError as exc:
        raise SystemExit(f"twin: {exc}") from None
    world.save()
    print(f"twin: reset to scenario {world.state['scenario']} ({args.home}; the twin is not running)")
    return 0


def status(args: argparse.Namespace) -> int:
    info = _running(args.home)
    if info:
        st = _call(info, "GET", "/_twin/status")
        st["server"] = info
    else:
        from twin.world import World

        world = World(args.home)
        if not world.path.exists():
            raise SystemExit(f"twin: no world in {args.home} yet; run `python -m twin reset` or `python -m twin serve`")
        world.load_or_reset(None)
        world.advance()
        st = world.status()
        st["server"] = None
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    fast = f" (clock ×{st['clock_scale']:g})" if st.get("clock_scale", 1) != 1 else ""
    print(f"scenario {st['scenario']}{fast}: {st['description']}")
    print(f"server   {'http://' + st['server']['control'] if st['server'] else 'not running'}  (home {args.home})")
    for svc in st["run"]["services"]:
        split = ", ".join(f"{t.get('revision', 'LATEST')} {t.get('percent', 0)} %" for t in svc.get("trafficStatuses", []))
        state = "reconciling" if svc.get("reconciling") else "ready"
        print(f"service  {svc['name'].rsplit('/', 1)[-1]}: {split} ({state})")
    _print_monitoring(st)
    req = st["requests"]
    print(f"requests {req['reads']} reads, {req['writes']} writes since reset")
    return 0


def _print_monitoring(st: dict[str, Any]) -> None:
    """Phase 4's resources, one line each, by name (``--json`` has them whole)."""
    summary = st.get("monitoring", {}).get("summary")
    if summary is None:  # a twin started before Phase 4
        return

    def names(items: list[str]) -> str:
        return ", ".join(items) or "(none)"

    policies = [f"{p['displayName']} ({'enabled' if p['enabled'] else 'disabled'})" for p in summary["alertPolicies"]]
    print(f"metrics  {names(summary['logMetrics'])}")
    print(f"alerts   {names(policies)}")
    print(f"boards   {names(summary['dashboards'])}")
    print(f"channels {names([c.rsplit('/', 1)[-1] for c in summary['notificationChannels']])}")
    for fault in st.get("faults", []):
        print(f"fault    {fault['method']}: {fault['code']} {fault['status']}")


def stop(args: argparse.Namespace) -> int:
    info = _running(args.home)
    if not info:
        print("twin: not running")
        return 0
    os.kill(info["pid"], signal.SIGTERM)
    print(f"twin: stopped pid {info['pid']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twin", description=__doc__)
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME,
                        help=f"where the world persists (default {DEFAULT_HOME}; env GOLDENPATH_TWIN_HOME)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the twin in the foreground")
    p.add_argument("--scenario", help="scenario for a new world (an existing world is kept until reset)")
    p.add_argument("--control", type=_addr, default=_addr(DEFAULT_CONTROL), help="control plane address")
    p.add_argument("--data", type=_addr, default=_addr(DEFAULT_DATA), help="data plane (TLS) address")
    p.add_argument("--grpc", type=_addr, default=_addr(DEFAULT_GRPC),
                   help="gRPC address (Cloud SQL Admin and Monitoring have no REST transport in their clients)")
    p.set_defaults(func=serve)
    p = sub.add_parser("reset", help="put the world back to a scenario (default incident-1278)")
    p.add_argument("--scenario", help="a built-in scenario name or the path of a scenario file")
    p.add_argument("--clock-scale", type=float, default=1.0,
                   help="rehearse time windows faster: one real second counts as this many twin seconds "
                        "(e.g. 60: the 10-minute 503 window passes in 10 s)")
    p.set_defaults(func=reset)
    p = sub.add_parser("status", help="show the world")
    p.add_argument("--json", action="store_true", help="the whole world, in the APIs' own JSON")
    p.set_defaults(func=status)
    p = sub.add_parser("stop", help="stop a running twin")
    p.set_defaults(func=stop)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
