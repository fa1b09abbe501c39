"""The runbook's "Success Confirmation", and the run's final verdict.

Four of its five items are phase criteria already (health, WebSocket, database, Golden Path): their
verdict functions are reused on the same observations, never measured twice. "Zero HTTP 503 errors
for 10 minutes" is its own, a time window over the request log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from dataclasses import replace

from goldenpath import sources as src
from goldenpath.criteria import BLOCKER, PER_SERVED_SERVICE, Criterion, Seen, got
from goldenpath.criteria import phase2 as p2
from goldenpath.criteria import phase3 as p3
from goldenpath.observations import CleanWindow
from goldenpath.verdict import Status, Verdict

HEALTH = "health_under_2s"
WEBSOCKET = "websocket"
ZERO_503 = "zero_503_window"
DATABASE = "database_under_75"
GOLDEN_PATH = "golden_path"

# The runbook's order and words.
ITEMS = {
    HEALTH: "All health endpoints responding < 2 seconds",
    WEBSOCKET: "WebSocket connections successful",
    ZERO_503: "Zero HTTP 503 errors for 10 minutes",
    DATABASE: "Database utilization < 75%",
    GOLDEN_PATH: "Golden Path validation passes end-to-end",
}


def duration(seconds: float) -> str:
    """3 min 12 s, 45 s, 10 min."""
    seconds = int(round(seconds))
    minutes, rest = divmod(seconds, 60)
    if not minutes:
        return f"{rest} s"
    return f"{minutes} min" + (f" {rest} s" if rest else "")


def _when(dt: datetime) -> str:
    return dt.strftime("%H:%M:%S UTC")


def zero_503(w: CleanWindow, min_requests: int) -> Verdict:
    """No 503 in the window, with enough traffic to say so. 503s that predate the service's last
    change are history: the window is "not yet clean" (inconclusive), with how much of it is."""
    log, last_change, window = got(w.log), got(w.last_change), duration(w.window_seconds)
    seen = f"{log.total_seen}{'+' if log.total_capped else ''} requests"
    evidence = {"request_log": log.summary(), "window_seconds": w.window_seconds, "clock_scale": w.clock_scale,
                "last_change": last_change.isoformat()}

    def verdict(status: Status, reason: str, clean: float) -> Verdict:
        return Verdict(ZERO_503, w.service, status, f"{w.service}: {reason}",
                       {**evidence, "clean_seconds": round(clean, 1)},
                       value=f"503-free for {duration(clean)} of {window} ({seen})")

    if log.errors_503 == 0:
        if log.total_seen < min_requests:
            return verdict(Status.INCONCLUSIVE, f"no 503 in the last {window}, but only {seen} were logged; "
                                                f"at least {min_requests} are needed to say so", w.window_seconds)
        return verdict(Status.PASS, f"no 503 in the last {window} ({seen})", w.window_seconds)
    latest = datetime.fromisoformat(str(log.examples[0]["time"]).replace("Z", "+00:00")) if log.examples else w.now
    clean = w.target_seconds(latest)
    count = f"{log.errors_503}{'+' if log.errors_capped else ''}"
    if latest <= last_change:
        return verdict(Status.INCONCLUSIVE,
                       f"not yet clean: 503-free for {duration(clean)} of {window}; the {count} 503s in the window "
                       f"(latest {_when(latest)}) predate the last change to the service at {_when(last_change)}. "
                       "Run again later, or with --soak to wait for the window", clean)
    return verdict(Status.FAIL, f"{count} 503s in the last {window}, the latest at {_when(latest)}, after the last "
                                f"change to the service ({_when(last_change)}); 503-free for only {duration(clean)}",
                   clean)


def all_of(item: str, subject: str, verdicts: Sequence[Verdict]) -> Verdict:
    """One checklist item from several verdicts (e.g. every health endpoint): the worst decides."""
    if not verdicts:
        return Verdict(item, subject, Status.INCONCLUSIVE, f"{subject}: nothing to check (none configured)")
    failed = [v for v in verdicts if v.status is Status.FAIL]
    unsure = [v for v in verdicts if v.status is Status.INCONCLUSIVE]
    worst = failed or unsure
    status = Status.FAIL if failed else Status.INCONCLUSIVE if unsure else Status.PASS
    reason = "; ".join(v.reason for v in worst) if worst else f"all {len(verdicts)} pass"
    return Verdict(item, subject, status, f"{subject}: {reason}", {"parts": [v.line() for v in verdicts]},
                   value=f"{sum(v.passed for v in verdicts)}/{len(verdicts)}",
                   escalation=any(v.escalation for v in verdicts))


# ---- the records: how each item is judged, on which observation ---------------------------------

def _health(s: Seen, _: str) -> Verdict:
    checks = list(s.obs.health.values())
    verdict = all_of(HEALTH, "health endpoints", [p3.health_endpoint(h, s.th) for h in checks])
    slowest = max((h.seconds for h in checks), default=0.0)
    return replace(verdict, value=f"{verdict.value or '0/0'} answered 200 within {s.th.health_seconds:g} s, "
                                  f"slowest {slowest:.2f} s")


def _websocket(s: Seen, _: str) -> Verdict:
    assert s.t.websocket is not None
    results = s.obs.websocket
    return replace(p3.websocket(s.t.websocket.url, results), value=f"{sum(r.ok for r in results)}/{len(results)} connected")


def _golden_path(s: Seen, _: str) -> Verdict:
    walk = s.obs.golden_path
    value = ("not walked" if walk is None else f"breaks at {walk.failed_leg}" if not walk.ok
             else f"login → AI response in {max(walk.legs.values()):.2f} s")
    return replace(p3.golden_path(walk, s.obs.golden_path_problem), value=value)


# Four items re-judge a phase's observation (measured once per session); the 503 window is its own.
RECORDS = (
    Criterion(HEALTH, None, ITEMS[HEALTH], BLOCKER, "phase3", _health, sources=(src.HTTP_CHECK,)),
    Criterion(WEBSOCKET, None, ITEMS[WEBSOCKET], BLOCKER, "phase3", _websocket, needs=("websocket",),
              sources=(src.WEBSOCKET,)),
    Criterion(ZERO_503, None, ITEMS[ZERO_503], BLOCKER, "clean_window",
              lambda s, name: zero_503(s.obs[name], s.th.min_requests), per=PER_SERVED_SERVICE,
              sources=(src.RUN_SERVICE, src.LOG_ENTRIES)),
    Criterion(DATABASE, None, ITEMS[DATABASE], BLOCKER, "phase2",
              lambda s, _: p2.db_connections(s.obs.instance, s.obs.backends, s.th, s.obs.backends_since),
              needs=("database",), sources=(src.SQL_INSTANCE, src.TIME_SERIES)),
    Criterion(GOLDEN_PATH, None, ITEMS[GOLDEN_PATH], BLOCKER, "phase3", _golden_path, sources=(src.JOURNEY,)),
)
BY_ID = {r.id: r for r in RECORDS}
