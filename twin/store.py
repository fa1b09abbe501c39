"""What every API of the twin shares, and nothing else: the world's state and its persistence,
Google's error shape, timestamps, etags, request accounting and injected faults.

This is the leaf of the twin's imports: every API module (``twin.run``, ``twin.logging``,
``twin.vpcaccess``, ``twin.compute``, ``twin.sqladmin``, ``twin.monitoring``, ``twin.dashboards``)
builds on it and on nothing of each other's but what the API itself reads (an alert policy reads
log-based metrics; the Cloud SQL metric reads the instance). :mod:`twin.world` composes them.

The state is plain JSON (resources kept in their APIs' own REST field names) so it can be persisted
between pytest runs and shown by ``python -m twin status --json``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import googleapiclient

STATE_FILE = "world.json"
# Requests the timeline keeps (the world is persisted whole every 0.2 s: it must stay small).
TIMELINE_LIMIT = 20_000


class ApiError(Exception):
    """An error the way Google's REST APIs return it: HTTP code, canonical status, message, and for
    the older APIs (Cloud SQL Admin) the ``errors`` list of {message, domain, reason, ...}."""

    def __init__(self, code: int, status: str, message: str, errors: list[dict[str, str]] | None = None,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code, self.status, self.message, self.errors = code, status, message, errors
        self.details = details or []  # google.rpc error details (ErrorInfo, Help), each with its "@type"

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.errors:
            error["errors"] = self.errors  # the older JSON-RPC style list some APIs (Cloud SQL) still send
        if self.details:
            error["details"] = self.details
        return {"error": error}


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def make_etag(*parts: object) -> str:
    return '"' + hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:20] + '"'


def roundtrip(message_type: Any, body: dict[str, Any]) -> dict[str, Any]:
    """REST JSON through a client library's proto-plus type: unknown fields raise, defaults drop out."""
    msg = message_type.from_json(json.dumps(body), ignore_unknown_fields=False)
    return json.loads(message_type.to_json(
        msg, use_integers_for_enums=False, always_print_fields_with_no_presence=False, indent=None))


def parse_body(message_type: Any, text: bytes) -> dict[str, Any]:
    """A request body as the API decodes it: unknown fields (and malformed JSON) are INVALID_ARGUMENT.

    Enums may come as numbers (the REST transports send ``$alt=json;enum-encoding=int``); they are
    kept as names, as the twin stores and answers them. proto3 scalars have no presence, so
    ``"minInstances": 0`` reads as unset, as it does for the real API.
    """
    try:
        raw = json.loads(text or b"{}")
        if not isinstance(raw, dict):
            raise ValueError("the body is not a JSON object")
        return roundtrip(message_type, raw)
    except Exception as exc:  # the message type rejected it: what the API calls a bad request
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}") from None


# The discovery documents google-api-python-client ships: Google's description of each REST API.
DISCOVERY_DIR = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"


@functools.cache
def discovery_document(name: str) -> dict[str, Any]:
    """A shipped discovery document by file stem, e.g. ``sqladmin.v1``."""
    return json.loads((DISCOVERY_DIR / f"{name}.json").read_text())


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "boolean": (bool,), "number": (int, float), "array": (list,), "object": (dict,),
}


def check_schema(doc: dict[str, Any], schema: dict[str, Any], value: Any, where: str) -> None:
    """Refuse a JSON value the discovery schema does not describe: an unknown field, or a value of the
    wrong JSON type (int64 and uint64 are strings in REST JSON; Google also accepts a number there).
    Raises INVALID_ARGUMENT in the words of Google's front end ("Invalid JSON payload received.")."""
    if "$ref" in schema:
        schema = doc["schemas"][schema["$ref"]]
    kind = schema.get("type", "any")
    if kind == "any":
        return
    ok = _JSON_TYPES.get(kind, ())
    if kind == "integer" or schema.get("format") in ("int64", "uint64"):
        ok = (int, str) if schema.get("format") in ("int64", "uint64") else (int,)
        if isinstance(value, str) and not re.fullmatch(r"-?\d+", value):
            ok = ()
    if isinstance(value, bool) and kind != "boolean":
        ok = ()
    if not isinstance(value, ok):
        raise ApiError(400, "INVALID_ARGUMENT",
                       f"Invalid JSON payload received. Invalid value at '{where}' ({kind}): {json.dumps(value)}")
    # (the isinstance tests repeat the one above for the type checker: `ok` is a runtime tuple)
    if kind == "array" and isinstance(value, list):
        for i, item in enumerate(value):
            check_schema(doc, schema.get("items", {}), item, f"{where}[{i}]")
    elif kind == "object" and isinstance(value, dict):
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                check_schema(doc, props[key], item, f"{where}.{key}" if where else key)
            elif extra is not None:
                check_schema(doc, extra, item, f"{where}[{key!r}]")
            else:
                raise ApiError(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. Unknown name {key!r} at "
                                                        f"'{where or 'body'}': Cannot find field.")


def no_requests() -> dict[str, Any]:
    """The request accounting of a world just reset (Store.count fills it)."""
    return {"reads": 0, "writes": 0, "by_method": {}, "timeline": [], "timeline_dropped": 0}


def imposed_event(kind: str, api: str, resource: str, start: float, end: float, **extra: Any) -> dict[str, Any]:
    """One wait the twin imposes (see twin.world.imposed for the definitions), in real epoch seconds."""
    return {"kind": kind, "api": api, "resource": resource, "start": round(start, 4), "end": round(end, 4),
            "seconds": round(max(0.0, end - start), 4), **extra}


@dataclass(frozen=True)
class DataAnswer:
    status: int
    body: dict[str, Any]
    latency: float


class Store:
    """The world's state (one JSON document) and the bookkeeping every API does on it."""

    # Persistence is debounced (twin.world.Twin.flush_forever): the world is written once it has
    # been left alone this long, or once its oldest unsaved change is this old under steady traffic.
    # Writing it every 0.2 s while dirty, as before, held the twin's event loop for ~40 ms each time
    # with twenty services' logs in it (a 3 MB document), during the very bursts the gate times (the
    # bench's wall time moved less than its noise; the twin's CPU went to serving, not to saving).
    QUIET_SECONDS = 0.2
    MAX_UNSAVED_SECONDS = 5.0

    def __init__(self, home: Path) -> None:
        self.home = home
        self.state: dict[str, Any] = {}
        self._dirty_since: float | None = None
        self.changed_at = 0.0
        self.dirty = False

    @property
    def dirty(self) -> bool:
        """Changed since it was last saved."""
        return self._dirty_since is not None

    @dirty.setter
    def dirty(self, value: bool) -> None:
        if value:
            self.changed_at = time.monotonic()
            if self._dirty_since is None:
                self._dirty_since = self.changed_at
        else:
            self._dirty_since = None

    def save_due(self, now: float) -> bool:
        """Whether a debounced save is due at ``now`` (time.monotonic()): changed, and then either
        left alone QUIET_SECONDS or unsaved for MAX_UNSAVED_SECONDS."""
        return self._dirty_since is not None and (now - self.changed_at >= self.QUIET_SECONDS
                                                   or now - self._dirty_since >= self.MAX_UNSAVED_SECONDS)

    @property
    def path(self) -> Path:
        return self.home / STATE_FILE

    def load(self) -> bool:
        """Load the persisted world; False when there is none."""
        if not self.path.exists():
            return False
        self.state = json.loads(self.path.read_text())
        return True

    def save(self) -> None:
        # Write-then-rename: a twin killed mid-write must not leave a torn world behind.
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.path)
        self.dirty = False

    # ---- request accounting --------------------------------------------------------------

    def count(self, method: str, write: bool, now: float | None = None) -> None:
        """Count one API request, and put it on the timeline (``[epoch seconds, method, 1 if a write
        else 0]``, oldest first) so a caller can split the requests by time interval (a benchmark's
        phase). The timeline keeps the last TIMELINE_LIMIT requests; ``timeline_dropped`` counts the
        older ones, so the timeline plus the dropped always sum to the counters."""
        req = self.state["requests"]
        req["writes" if write else "reads"] += 1
        req["by_method"][method] = req["by_method"].get(method, 0) + 1
        timeline = req.setdefault("timeline", [])
        timeline.append([round(time.time() if now is None else now, 4), method, int(write)])
        if len(timeline) > TIMELINE_LIMIT:
            drop = len(timeline) - TIMELINE_LIMIT
            del timeline[:drop]
            req["timeline_dropped"] = req.get("timeline_dropped", 0) + drop
        self.dirty = True

    def check_fault(self, method: str, dry_run: bool = False) -> "InjectedFault | None":
        """Count a call of ``method`` against the scenario's fault for it, and say what this call gets.

        None: the call is served normally. Otherwise an :class:`InjectedFault` (the semantics are
        twin.scenario.FaultSpec's): call ``after_calls + 1`` to ``after_calls + times`` of the method
        (every one after ``after_calls`` when ``times`` is unset) is hit. A dry run (validateOnly) is
        not counted nor hit unless the fault says ``dry_runs``, so a client's preflight succeeds and
        the real write fails: the case its rollback exists for.

        The caller decides nothing itself: it refuses the call with ``refusal`` (nothing happens),
        else carries it out; then it answers ``error_after`` instead of the result when that is set,
        and holds the answer back ``delay`` seconds without holding the twin's lock.
        """
        fault = self.state.get("faults", {}).get(method)
        if not fault or (dry_run and not fault.get("dry_runs")):
            return None
        fault["calls"] = fault.get("calls", 0) + 1
        self.dirty = True
        nth = fault["calls"] - fault.get("after_calls", 0)  # 1 for the first call that is hit
        if nth <= 0 or (fault.get("times") is not None and nth > fault["times"]):
            return None
        fault["hits"] = fault.get("hits", 0) + 1
        error = (ApiError(fault["code"], fault["status"], fault["message"])
                 if fault.get("code") is not None else None)
        return InjectedFault(error=error, applied=bool(fault.get("applied")),
                             delay=float(fault.get("delay_seconds") or 0))

    def seed_faults(self, faults: list[Any]) -> None:
        self.state["faults"] = {f.method: {"code": f.code, "status": f.status, "message": f.message,
                                           "dry_runs": f.dry_runs, "after_calls": f.after_calls, "times": f.times,
                                           "delay_seconds": f.delay_seconds, "applied": f.applied,
                                           "calls": 0, "hits": 0}
                                for f in faults}


@dataclass(frozen=True)
class InjectedFault:
    """What one call hit by a scenario fault gets (see Store.check_fault)."""

    error: ApiError | None   # the fault's error, if it has one
    applied: bool            # the call is carried out before the error is answered
    delay: float             # real seconds the answer is held back

    @property
    def refusal(self) -> ApiError | None:
        """The error to refuse the call with before it is carried out (None: carry it out)."""
        return None if self.applied else self.error

    @property
    def error_after(self) -> ApiError | None:
        """The error answered in place of the result of a call that was carried out."""
        return self.error if self.applied else None


# ---- names, pages and errors the APIs share ------------------------------------------------


def check_project(world: Store, project: str, what: str) -> None:
    # As for entries:list and timeSeries.list: a project the twin does not hold is one the caller
    # may not read (Google answers 403 for a project it cannot see).
    if project != world.state["project"]:
        raise ApiError(403, "PERMISSION_DENIED",
                       f"The twin holds {what} only for projects/{world.state['project']}; asked for projects/{project}.")


def parent_project(world: Store, name: str, what: str) -> str:
    """``projects/PROJECT`` (a gRPC request's ``name``) -> PROJECT, checked."""
    project = name.removeprefix("projects/")
    if not name.startswith("projects/") or not project or "/" in project:
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid resource name {name!r}; expected projects/PROJECT_ID.")
    check_project(world, project, what)
    return project


def child_id(world: Store, name: str, collection: str, what: str) -> str:
    """``projects/PROJECT/COLLECTION/ID`` -> ID, the project checked."""
    m = re.fullmatch(rf"projects/([^/]+)/{collection}/([^/]+)", name)
    if m is None:
        raise ApiError(400, "INVALID_ARGUMENT",
                       f"Invalid resource name {name!r}; expected projects/PROJECT_ID/{collection}/ID.")
    check_project(world, m.group(1), what)
    return m.group(2)


def records(world: Store, key: str) -> dict[str, Any]:
    # A world saved before Phase 4 has none of these keys; it gains them on first use.
    records: dict[str, Any] = world.state.setdefault(key, {})
    return records


def paginate(items: list[dict[str, Any]], page_size: int, page_token: str | None, default: int
          ) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``items``; tokens are the offsets this function hands out, anything else is refused."""
    if page_size < 0:
        raise ApiError(400, "INVALID_ARGUMENT", f"page_size must not be negative, got {page_size}.")
    start = 0
    if page_token:
        if not page_token.isdigit() or not 0 < int(page_token) < len(items):
            raise ApiError(400, "INVALID_ARGUMENT", f"Invalid page token {page_token!r}.")
        start = int(page_token)
    size = page_size or default
    nxt = str(start + size) if start + size < len(items) else None
    return items[start:start + size], nxt


def lookup(world: Store, project: str, key: str, item_id: str, what: str, not_found: str) -> dict[str, Any]:
    """The record ``item_id`` of ``world.state[key]`` in ``project`` (checked), or 404 ``not_found``."""
    check_project(world, project, what)
    rec = records(world, key).get(item_id)
    if rec is None:
        raise ApiError(404, "NOT_FOUND", not_found)
    return rec


def list_body(key: str, items: list[dict[str, Any]], page_size: int, page_token: str | None,
              default: int) -> dict[str, Any]:
    """A list method's answer: one page of ``items`` under ``key``, and the next page's token if any."""
    page, nxt = paginate(items, page_size, page_token, default)
    return {key: page, **({"nextPageToken": nxt} if nxt else {})}


def numeric_id() -> str:
    # Alert policy and condition ids are 19-20 digit numbers assigned by the API.
    return str(10**18 + uuid.uuid4().int % (9 * 10**18))


def invalid(field: str, value: object, reason: str) -> ApiError:
    # The API's own phrasing: Field X had an invalid value of "V": reason.
    return ApiError(400, "INVALID_ARGUMENT", f'Field {field} had an invalid value of "{value}": {reason}')


def duration_seconds(duration: str) -> float:
    return float(duration.rstrip("s"))



def sample_times(start: float, end: float, period: float, offset: float = 0.0) -> list[float]:
    """The instants ``offset + k * period`` in the read interval (start, end], newest first; a
    zero-length interval (start == end) selects the sample at exactly ``end``, if there is one.

    Cloud Monitoring reads are half-open, "(startTime, endTime]" (TimeInterval in monitoring.v3.json).
    """
    times: list[float] = []
    k = math.floor((end - offset) / period + 1e-9)
    while True:
        t = round(offset + k * period, 6)
        if t > end + 1e-9:
            k -= 1
            continue
        if start == end:
            return [t] if abs(t - end) < 1e-6 else []
        if t <= start + 1e-9:
            return times
        times.append(t)
        k -= 1
