"""Phase 3 success metrics (runbook: "Phase 3: Service Recovery")."""

from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

from goldenpath.config import Target, Thresholds
from goldenpath.observations import (
    GoldenPathResult, HttpCheck, Phase3Observation, RevisionState, ServiceState, StartupLog, WsResult,
)
from goldenpath import sources as src
from goldenpath.criteria import BLOCKER, CRITICAL, PER_HEALTH_ENDPOINT, PER_SERVICE, Criterion, Seen
from goldenpath.criteria import evaluate as derive
from goldenpath.verdict import Status, Verdict

WEBSOCKET = "websocket"
GOLDEN_PATH = "golden_path"
HEALTH_ENDPOINTS = "health_endpoints"
NO_STARTUP_ERRORS = "no_startup_errors"
CONFIGURATION = "configuration"

TITLES = {
    WEBSOCKET: "WebSocket connections successful",
    GOLDEN_PATH: "Golden Path validation passes end-to-end",
    HEALTH_ENDPOINTS: "All health endpoints operational",
    NO_STARTUP_ERRORS: "No service startup errors",
    CONFIGURATION: "Critical configuration present",
}

HEALTHY_WORDS = {"healthy", "ok", "pass", "up"}


def websocket(url: str, results: Sequence[WsResult]) -> Verdict:
    failed = [r for r in results if not r.ok]
    evidence = {"url": url, "connections": len(results),
                "results": [{"ok": r.ok, "cause": r.cause, "seconds": round(r.seconds, 3)} for r in results]}
    if not results:
        return Verdict(WEBSOCKET, url, Status.INCONCLUSIVE, f"{url}: no connection was attempted", evidence)
    if failed:
        causes = Counter(r.cause for r in failed)
        return Verdict(WEBSOCKET, url, Status.FAIL,
                       f"{url}: {len(failed)} of {len(results)} connections failed: "
                       + "; ".join(f"{c} ×{n}" for c, n in causes.most_common())
                       + "; expected every upgrade to succeed and every ping to get its pong", evidence)
    worst = max(r.seconds for r in results)
    return Verdict(WEBSOCKET, url, Status.PASS,
                   f"{url}: {len(results)} concurrent connections, every ping answered (slowest {worst:.2f} s)",
                   evidence)


def golden_path(result: GoldenPathResult | None, problem: str | None = None) -> Verdict:
    subject = "login → AI response"
    if result is None:
        return Verdict(GOLDEN_PATH, subject, Status.FAIL,
                       f"the Golden Path could not be walked: {problem or 'not configured'}", {})
    legs = ", ".join(f"{leg} {sec:.2f} s" for leg, sec in result.legs.items())
    evidence = {"legs_seconds": {k: round(v, 3) for k, v in result.legs.items()}, "events": list(result.events),
                "failed_leg": result.failed_leg, "cause": result.cause}
    if not result.ok:
        return Verdict(GOLDEN_PATH, subject, Status.FAIL,
                       f"the Golden Path breaks at {result.failed_leg}: {result.cause}"
                       + (f" (reached: {legs})" if legs else ""), evidence)
    return Verdict(GOLDEN_PATH, subject, Status.PASS,
                   f"a user logs in and gets an AI response: {legs}; events {' → '.join(result.events)}", evidence)


def health_endpoint(check: HttpCheck, thresholds: Thresholds) -> Verdict:
    limit = thresholds.health_seconds
    evidence = {"url": check.url, "status": check.status, "seconds": round(check.seconds, 3),
                "body_status": check.body_status, "detail": check.detail}
    problems = []
    if check.status is None:
        problems.append(f"no answer ({check.detail or 'no detail'})")
    elif check.status != 200:
        problems.append(f"answered {check.status}" + (f" ({check.detail})" if check.detail else ""))
    elif (check.body_status or "").lower() not in HEALTHY_WORDS:
        problems.append(f"answered 200 but its body says {check.body_status!r}"
                        + (f" ({check.detail})" if check.detail else ""))
    if check.seconds >= limit:
        problems.append(f"took {check.seconds:.2f} s (limit {limit:g} s)")
    if problems:
        return Verdict(HEALTH_ENDPOINTS, check.url, Status.FAIL,
                       f"{check.url}: {'; '.join(problems)}; expected 200 and a healthy body within {limit:g} s",
                       evidence)
    return Verdict(HEALTH_ENDPOINTS, check.url, Status.PASS,
                   f"{check.url}: 200 {check.body_status} in {check.seconds:.2f} s", evidence)


def no_startup_errors(service: ServiceState, serving: RevisionState | None, log: StartupLog | None) -> Verdict:
    if serving is None or log is None:
        return Verdict(NO_STARTUP_ERRORS, service.name, Status.FAIL,
                       f"{service.name}: no single revision serves the traffic ({service.split_text()}); "
                       "expected one ready serving revision", {})
    evidence = {"revision": serving.name, "since": log.since.isoformat(), "errors": log.errors,
                "examples": list(log.examples)}
    if not serving.ready:
        return Verdict(NO_STARTUP_ERRORS, service.name, Status.FAIL,
                       f"{service.name}: the serving revision {serving.name} is not ready", evidence)
    if log.errors:
        return Verdict(NO_STARTUP_ERRORS, service.name, Status.FAIL,
                       f"{service.name}: {serving.name} logged {log.errors} error(s) since it was created, e.g. "
                       f"{log.examples[0]!r}; expected none", evidence)
    return Verdict(NO_STARTUP_ERRORS, service.name, Status.PASS,
                   f"{service.name}: {serving.name} is ready and logged no error since it was created", evidence)


def configuration(service: ServiceState, serving: RevisionState | None, required: Mapping[str, str]) -> Verdict:
    if serving is None:
        return Verdict(CONFIGURATION, service.name, Status.FAIL,
                       f"{service.name}: no single revision serves the traffic ({service.split_text()})", {})
    wrong = []
    for name, want in required.items():
        have = serving.env_value(name)
        if have != want:
            wrong.append(f"{name} is {'unset' if have is None else repr(have)} (expected {want!r})")
    # Values are shown only for the variables the target names, which are settings, not secrets.
    evidence = {"revision": serving.name, "required": dict(required),
                "present": {k: serving.env_value(k) for k in required}}
    if wrong:
        return Verdict(CONFIGURATION, service.name, Status.FAIL,
                       f"{service.name}: the serving revision {serving.name} has {'; '.join(wrong)}", evidence)
    return Verdict(CONFIGURATION, service.name, Status.PASS,
                   f"{service.name}: {serving.name} carries {', '.join(f'{k}={v}' for k, v in required.items())}"
                   if required else f"{service.name}: the target requires no environment", evidence)


# The step kind of goldenpath/remediation/phase3.py (the criteria name it; they do not import it).
ROLLOUT = "rollout-config"


def _websocket(s: Seen, _: str) -> Verdict:
    assert s.t.websocket is not None
    return websocket(s.t.websocket.url, s.obs.websocket)


# In the order phase 3 judges them: each service's, then the target's.
RECORDS = (
    Criterion(CONFIGURATION, 3, TITLES[CONFIGURATION], CRITICAL, "phase3",
              lambda s, name: configuration(s.obs.services[name], s.obs.serving[name], s.t.service(name).required_env),
              per=PER_SERVICE, steps=(ROLLOUT,), sources=(src.RUN_SERVICE, src.RUN_REVISIONS)),
    Criterion(NO_STARTUP_ERRORS, 3, TITLES[NO_STARTUP_ERRORS], CRITICAL, "phase3",
              lambda s, name: no_startup_errors(s.obs.services[name], s.obs.serving[name], s.obs.startup[name]),
              per=PER_SERVICE, steps=(ROLLOUT,), sources=(src.RUN_SERVICE, src.RUN_REVISIONS, src.LOG_ENTRIES)),
    Criterion(HEALTH_ENDPOINTS, 3, TITLES[HEALTH_ENDPOINTS], CRITICAL, "phase3",
              lambda s, url: health_endpoint(s.obs.health[url], s.th), per=PER_HEALTH_ENDPOINT, steps=(ROLLOUT,),
              sources=(src.HTTP_CHECK,)),
    Criterion(WEBSOCKET, 3, TITLES[WEBSOCKET], BLOCKER, "phase3", _websocket, needs=("websocket",),
              steps=(ROLLOUT,), sources=(src.WEBSOCKET,)),
    Criterion(GOLDEN_PATH, 3, TITLES[GOLDEN_PATH], BLOCKER, "phase3",
              lambda s, _: golden_path(s.obs.golden_path, s.obs.golden_path_problem), steps=(ROLLOUT,),
              sources=(src.JOURNEY,)),
)
BY_ID = {r.id: r for r in RECORDS}


def evaluate(obs: Phase3Observation, target: Target, subjects: Sequence[str] | None = None) -> list[Verdict]:
    """Every phase-3 verdict; with ``subjects``, the per-service ones only for those services."""
    return derive(RECORDS, Seen(target, obs), services=subjects)
