"""``python -m twin serve | reset | status | stop | capture``: run and steer the embedded staging twin,
and capture a real target as a scenario file it can load."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import importlib
import os
import threading
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

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


# Exit codes: 1 the command was refused (another home's twin, a twin that does not answer), 4 bad
# input (an unknown scenario, a clock scale out of range), as the gate's own usage errors.
REFUSED, BAD_INPUT = 1, 4
STOP_DEADLINE = 15.0  # seconds a twin gets to exit after SIGTERM before it is killed
# On a stop, requests still in flight (a delayed answer, a server-side wait) get this long to finish
# before they are cancelled, so a stop is never held up by a long injected delay.
GRACEFUL_SECONDS = 3  # whole seconds: uvicorn.Config declares an int
PROC = Path("/proc")


def _recorded(home: Path) -> dict[str, Any] | None:
    """What the server file says (pid, addresses), or None when there is none (or it is unreadable)."""
    try:
        info = json.loads((home / SERVER_FILE).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(info, dict) and isinstance(info.get("pid"), int) and isinstance(info.get("control"), str)
    return info if ok else None


def _health(control: str) -> dict[str, Any] | None:
    """The /_twin/health answer of whatever twin listens on ``control``, or None if nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{control}/_twin/health", timeout=2) as resp:
            answer = json.loads(resp.read())
            return answer if isinstance(answer, dict) else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs. A zombie (exited, not yet reaped by its parent) does not:
    its ports are closed and its world saved."""
    if not PROC.is_dir():  # not Linux: only the kernel's word, which counts a zombie as alive
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _is_twin(pid: int) -> bool:
    """Whether ``pid`` is a live ``python -m twin ... serve`` (a recycled pid is some other program,
    which `stop` must never signal)."""
    if not _alive(pid):
        return False
    if not PROC.is_dir():
        return True  # cannot tell without /proc: trust the server file
    try:
        argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"twin" in argv and b"serve" in argv


def _wait_gone(pid: int, deadline_s: float) -> bool:
    """Poll until ``pid`` has exited (True) or the deadline passed (False), with backoff."""
    deadline, delay = time.monotonic() + deadline_s, 0.01
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)  # a process shutting down: backoff, bounded by the deadline
        delay = min(delay * 1.5, 0.25)
    return True


def _running(home: Path) -> dict[str, Any] | None:
    """The running twin of THIS home (its server file's info), or None when none runs.

    Refuses (exits REFUSED, one paragraph, nothing changed) when the server file's address is
    answered by a twin of another home (the recorded server is gone and another checkout's twin
    took the port), or when the recorded server is alive but does not answer.
    """
    info = _recorded(home)
    if info is None:
        return None
    mine, pid, control = home.resolve(), int(info["pid"]), info["control"]
    health = _health(control)
    if health is not None and Path(str(health.get("home", ""))) == mine:
        return info
    alive = _is_twin(pid)
    if health is None and not alive:
        return None  # the recorded server is gone and nothing answers: the world file is this home's alone
    if health is None:
        _refuse(f"twin: the twin recorded for {mine} (pid {pid}) is running but does not answer on {control}. "
                f"Nothing was changed. Wait for it to start, or stop it (`python -m twin --home {home} stop`) "
                "and run this again.")
    other = health.get("home", "an unknown home")
    recorded = (f"the server recorded for this home (pid {pid}) is still running but does not answer there"
                if alive else f"the server recorded for this home (pid {pid}) is gone")
    _refuse(f"twin: {home / SERVER_FILE} names a twin at {control}, but the twin answering there serves "
            f"the home {other} (pid {health.get('pid', 'unknown')}), not {mine}; {recorded}. Nothing was "
            f"changed. To act on that twin, give its home (`python -m twin --home {other} ...`). To work on "
            f"this home: `python -m twin --home {home} stop` clears its stale server file, then `reset` and "
            f"`status` use this home's world file; or serve it on other ports (`python -m twin --home {home} "
            f"serve --control 127.0.0.1:PORT --data 127.0.0.1:PORT --grpc 127.0.0.1:PORT`).")
    return None  # unreachable: _refuse exits


def _refuse(message: str, code: int = REFUSED) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(code)


def _scenario_ref(ref: str | None, clock_scale: float = 1.0) -> str | None:
    """The scenario as the server should read it (a file path made absolute: the server's working
    directory is not this one), after checking it here: an unknown or invalid scenario, or a clock
    scale out of range, exits BAD_INPUT with one paragraph and no request sent."""
    from twin import scenario as scenarios
    from twin.world import check_faults

    if not 1 <= clock_scale <= 3600:
        _refuse(f"twin: --clock-scale must be between 1 and 3600, got {clock_scale:g}. Nothing was changed.",
                BAD_INPUT)
    if ref is None:
        return None
    try:
        check_faults(scenarios.load(ref))
    except scenarios.ScenarioError as exc:
        _refuse(f"twin: {exc} Nothing was changed.", BAD_INPUT)
    path = Path(ref)
    return str(path.resolve()) if path.suffix == ".toml" and path.exists() else ref


def _call(info: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    req = urllib.request.Request(f"http://{info['control']}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        # The twin refuses only what it was asked wrongly (a scenario it cannot load): bad input.
        _refuse(f"twin: {json.loads(exc.read()).get('error', exc)}", BAD_INPUT if exc.code == 400 else REFUSED)
        raise  # unreachable: _refuse exits


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from twin import certs
    from twin import scenario as scenarios
    from twin.grpcserver import serve_grpc
    from twin.server import control_app, data_app
    from twin.world import Twin, check_faults

    home: Path = args.home
    # An unknown scenario is refused before any port is taken (a new world would fail on it, and an
    # existing world would silently keep another scenario than the one asked for).
    if args.scenario:
        try:
            check_faults(scenarios.load(args.scenario))
        except scenarios.ScenarioError as exc:
            _refuse(f"twin: {exc} The twin was not started.", BAD_INPUT)
    # This home's own server, alive (whatever answers on the ports a stale server file names: this
    # twin may be asked to listen elsewhere, and a taken port is refused when it binds).
    info = _recorded(home)
    if info and info["pid"] != os.getpid() and _is_twin(info["pid"]):
        print(f"twin: already running for {home} (pid {info['pid']}, {info['control']}; see {home / SERVER_FILE}); "
              f"`python -m twin --home {home} stop` first", file=sys.stderr)
        return REFUSED
    twin = Twin(home, args.scenario)
    # The Compute types take seconds to import (twin/compute.py imports them on first use). Without
    # this the first certificate read of a run waited for the twin's import: a delay real Compute
    # never has, which the time-to-green bench counted as the gate's own (it is neither Google's nor
    # the gate's). Imported beside the serving, so the twin still answers at once.
    threading.Thread(target=importlib.import_module, args=("google.cloud.compute_v1",), daemon=True,
                     name="twin-import-compute").start()
    ca = certs.load_ca(home)
    hosts = [h for s in twin.world.state["services"].values() for h in s["hosts"]] or ["localhost"]
    (chost, cport), (dhost, dport), (ghost, gport) = args.control, args.data, args.grpc
    # Idle keep-alive connections stay open as long as on the data plane: with uvicorn's default of
    # 5 s a discovery client (httplib2) that read a resource, worked a while, then writes on the same
    # connection gets a broken pipe, which Google's front end does not cause that quickly.
    control = uvicorn.Server(uvicorn.Config(control_app(twin), host=chost, port=cport, log_level="warning",
                                            lifespan="off", timeout_keep_alive=30,
                                            timeout_graceful_shutdown=GRACEFUL_SECONDS))
    data_cfg = uvicorn.Config(data_app(twin), host=dhost, port=dport, log_level="warning", lifespan="off",
                              timeout_keep_alive=30, timeout_graceful_shutdown=GRACEFUL_SECONDS)
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

    # Each uvicorn server takes SIGTERM/SIGINT while it serves, and when it is done restores the
    # handler it found and raises the signal again. With Python's default handler that last raise
    # killed the process before `main`'s cleanup (the world saved, the server file removed); this
    # handler only asks both servers to exit (the gRPC face follows the control plane), at any time.
    def exit_servers(signum: int, frame: Any) -> None:
        control.should_exit = data.should_exit = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, exit_servers)
    asyncio.run(main())
    return 0


def reset(args: argparse.Namespace) -> int:
    ref = _scenario_ref(args.scenario, args.clock_scale)
    info = _running(args.home)
    if info:
        from urllib.parse import quote

        query = f"?clock_scale={args.clock_scale:g}" + (f"&scenario={quote(ref)}" if ref else "")
        out = _call(info, "POST", f"/_twin/reset{query}")
        fast = f", clock ×{out['clock_scale']:g}" if out.get("clock_scale", 1) != 1 else ""
        print(f"twin: reset to scenario {out['scenario']}{fast} (running twin at {info['control']}, "
              f"home {args.home})")
        return 0
    from twin.scenario import ScenarioError
    from twin.world import World

    world = World(args.home)
    try:
        world.reset(ref, clock_scale=args.clock_scale)
    except ScenarioError as exc:
        _refuse(f"twin: {exc} Nothing was changed.", BAD_INPUT)
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
    imposed = st.get("imposed", {}).get("seconds", {})
    if any(imposed.values()):
        print("imposed  " + ", ".join(f"{kind} {s:.2f} s" for kind, s in imposed.items() if s) + " (real seconds)")
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
        what = [f"{fault['code']} {fault['status']}" if fault.get("code") is not None else "no error"]
        what += [f"answered {fault['delay_seconds']:g} s late"] if fault.get("delay_seconds") else []
        what += ["after carrying the call out"] if fault.get("applied") and fault.get("code") is not None else []
        print(f"fault    {fault['method']}: {', '.join(what)} ({fault.get('hits', 0)} of {fault.get('calls', 0)} "
              "calls hit)")


def stop(args: argparse.Namespace) -> int:
    """Stop this home's twin and return only once its process has exited (its ports closed, its
    world saved), so a command right after cannot reach a dying server."""
    home: Path = args.home
    info = _recorded(home)
    if info is None:
        print("twin: not running")
        return 0
    pid = int(info["pid"])
    if not _is_twin(pid):
        (home / SERVER_FILE).unlink(missing_ok=True)
        print(f"twin: not running (the recorded server pid {pid} is gone); removed the stale server file")
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it exited just now
    if _wait_gone(pid, STOP_DEADLINE):
        print(f"twin: stopped pid {pid}")
        return 0
    print(f"twin: pid {pid} did not exit within {STOP_DEADLINE:g} s of SIGTERM; killing it (SIGKILL). Its world "
          "is as it last saved it (every 0.2 s).", file=sys.stderr)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if not _wait_gone(pid, 5.0):
        _refuse(f"twin: pid {pid} is still running after SIGKILL; look at it (`ps -p {pid}`) before starting "
                "another twin on its ports.")
    (home / SERVER_FILE).unlink(missing_ok=True)  # a killed server cannot remove it itself
    print(f"twin: killed pid {pid}")
    return 0


def capture(args: argparse.Namespace) -> int:
    """Read a target through the gate's adapters (read-only) and write it as a scenario file. The
    gate's library is imported only here: the twin itself never depends on it."""
    from goldenpath import capture as capturing
    from goldenpath import twinctl
    from goldenpath.config import load
    from goldenpath.errors import ConfigError

    try:
        target = load(args.targets_file.resolve(), args.target)
    except ConfigError as exc:
        _refuse(f"twin capture: {exc}", BAD_INPUT)
    if target.twin is not None:
        try:
            twinctl.ensure_running(target)  # a twin target: its world must be served to be read
        except ConfigError as exc:
            _refuse(f"twin capture: {exc}", BAD_INPUT)
    try:
        gaps = capturing.write(target, args.out)
    except ConfigError as exc:  # a missing credential, an unreachable endpoint: the gate's own paragraph
        args.out.unlink(missing_ok=True)
        _refuse(f"twin capture: {exc} Nothing was written.", BAD_INPUT)
    except Exception as exc:  # an API refused a read: say which, write nothing half-done
        args.out.unlink(missing_ok=True)
        _refuse(f"twin capture: reading target {args.target} failed ({type(exc).__name__}: {exc}). Nothing was "
                "written. Check the account's read permissions (README, 'Setup') and run again.")
    print(f"twin: captured target {args.target} into {args.out}; load it with "
          f"`python -m twin reset --scenario {args.out}`.")
    print("twin: not reproduced by the twin (also in the file's header):")
    for gap in gaps:
        print(f"  - {gap}")
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
                   help="gRPC address (Monitoring v3; Cloud SQL Admin is REST-only and answers UNIMPLEMENTED here)")
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
    p = sub.add_parser(
        "capture", help="write a target's current state as a scenario file (read-only)",
        description="Read a target (its Cloud Run services and revisions, connector, Cloud SQL instance and "
                    "num_backends, certificates, log-based metrics, alert policies, notification channels, "
                    "dashboards, and a summary of its request log) through the gate's own Google adapters, "
                    "with read calls only, and write it as a scenario file that `python -m twin reset "
                    "--scenario FILE` loads: a copy of that staging to rehearse --remediate on. Environment "
                    "values are kept only for the target's required_env (others are <redacted>); no token "
                    "or credential is written. What the twin cannot reproduce is listed in the file's header "
                    "and printed.")
    p.add_argument("--target", required=True, help="the target to read (a [targets.NAME] of the targets file)")
    p.add_argument("--targets-file", type=Path, default=Path(__file__).resolve().parent.parent / "targets.toml",
                   help="the targets file (default: the repository's targets.toml)")
    p.add_argument("--out", type=Path, required=True, help="the scenario file to write (FILE.toml)")
    p.set_defaults(func=capture)
    p = sub.add_parser("stop", help="stop a running twin")
    p.set_defaults(func=stop)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
