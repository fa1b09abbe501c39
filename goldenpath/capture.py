"""``python -m twin capture``: read a target through the gate's own Google adapters, read-only, and
write what it saw as a twin scenario file, so a fix can be rehearsed on a copy of that staging.

Only reads are made (gets and lists; the same read permissions the gate's read-only run needs). What
the file holds is what the gate observes, mapped onto the scenario schema (twin/scenario.py). It
never holds a secret: environment values are kept only for the variables the target requires (its
``required_env``), every other value is ``<redacted>``, and a log line copied into the file has every
such value and anything token-shaped replaced the same way. What the twin cannot reproduce is listed
in the file's header comment and returned to the caller to print, never silently dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

from goldenpath.config import Target
from goldenpath.gcp.compute import Compute
from goldenpath.gcp.dashboards import Dashboards
from goldenpath.gcp.logging import CloudLogging
from goldenpath.gcp.monitoring import Monitoring
from goldenpath.gcp.run import CloudRun, short
from goldenpath.gcp.session import GcpSession
from goldenpath.gcp.sqladmin import CloudSql
from goldenpath.gcp.vpcaccess import VpcAccess
from goldenpath.redact import HIDDEN

# The request log is summarised from at most this many entries per service (newest first): enough
# for rates and quantiles, and a bounded read of a busy project's logs.
REQUEST_ENTRIES = 2000
# What a token or a key looks like in a log line: an OAuth access token, a bearer header, a JWT, a
# PEM block, or any long unbroken run of base64/hex (a password, an API key).
TOKEN_SHAPED = re.compile(
    r"ya29\.[\w.-]+|[Bb]earer\s+\S+|eyJ[\w-]+\.[\w-]+\.[\w-]*|-----BEGIN [A-Z ]+-----[\s\S]*?-----END [A-Z ]+-----"
    r"|\b[A-Za-z0-9+/_=-]{32,}\b")
# A connector whose CPU is at or above this share is saturated: what it carried is less than what
# was asked of it, and the capture cannot see how much more.
SATURATED = 0.99
SATURATED_LOAD_FACTOR = 1.5


@dataclass
class Capture:
    scenario: dict[str, Any]
    gaps: list[str] = field(default_factory=list)  # what the twin cannot reproduce, one line each

    def toml(self, source: str) -> str:
        header = [f"# Captured from target {source} by `python -m twin capture` "
                  f"at {datetime.now(timezone.utc).isoformat(timespec='seconds')}.",
                  "# Read-only: gets and lists through the gate's own adapters. Environment values are kept only",
                  f"# for the target's required_env; every other value is {HIDDEN}.",
                  "#", "# Not reproduced by the twin (not captured, or only approximated):"]
        header += [f"#  - {g}" for g in self.gaps] or ["#  (nothing)"]
        return "\n".join(header) + "\n\n" + dumps(self.scenario)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every value of ``secrets`` and anything token-shaped replaced by <redacted>."""
    for value in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(value, HIDDEN)
    return TOKEN_SHAPED.sub(HIDDEN, text)


def capture(target: Target) -> Capture:
    session = GcpSession(target)
    now = datetime.now(timezone.utc)
    run, logging, monitoring = CloudRun(session), CloudLogging(session), Monitoring(session)
    gaps: list[str] = [
        "websocket behaviour (a session that accepts and never answers) and the agent's events: data-plane "
        "behaviour no Google API reads; the twin's defaults are used",
        "the Golden Path account: never captured (a credential); the twin's own rehearsal account is used",
        "what a rollout's new revisions would do (rollout.*: they start, they fail to deploy): not observable "
        "before a deploy; the twin's defaults (they start) are used",
        "injected API faults, Cloud Logging's read quota and search pacing: the twin's defaults are used",
        "timing (operation durations, metric sampling and publication lag): the twin's rehearsal pacing is used, "
        "with metrics sampled at the target's database metric_alignment_seconds",
    ]
    secrets: set[str] = set()
    scenario: dict[str, Any] = {
        "name": f"capture-{target.name}",
        "description": f"Captured from target {target.name} ({target.project}, {target.region}) at "
                       f"{now.isoformat(timespec='seconds')}",
        "project": target.project,
        "region": target.region,
    }
    alignment = target.database.metric_alignment_seconds if target.database else 60
    scenario["timing"] = {"metric_period_seconds": min(60, max(1, int(alignment))), "metric_lag_seconds": 3.0}

    # ---- certificates (first: a service's hosts are those its certificates cover) -------------
    certs = Compute(session).certificates()
    scenario["certificates"] = [
        {"name": c.name, "domains": list(c.domains or c.subject_alt_names), "status": c.status or "ACTIVE",
         "expires_in_days": round((c.expire_time - now).total_seconds() / 86400, 3) if c.expire_time else 60}
        for c in certs]
    if any(c.type and c.type != "MANAGED" for c in certs):
        gaps.append("self-managed certificates: the twin serves them as managed ones with the same SANs and expiry")

    # ---- Cloud Run ------------------------------------------------------------------------------
    login_host = urlsplit(target.golden_path.login_url).hostname if target.golden_path else None
    window = now - timedelta(minutes=target.thresholds.log_window_minutes)
    services, rates, contention = [], [], []
    for cfg in target.services:
        state = run.get_service(cfg.name)
        revisions = run.list_revisions(cfg.name)
        keep = set(cfg.required_env)
        for r in revisions:
            secrets.update(v for k, v in r.env if k not in keep)
        known = {urlsplit(u).hostname for u in [cfg.health_url or "", *cfg.health_endpoints] if u}
        if login_host and cfg.name == _login_service(target, login_host):
            known.add(login_host)
        known.discard(None)
        hosts = set(h for h in known if h)
        for c in scenario["certificates"]:
            if hosts & set(c["domains"]):
                hosts |= set(c["domains"])
        entries = logging.request_entries(cfg.name, window, REQUEST_ENTRIES)
        summary = _summary(entries)
        broken = {rev for rev, s in summary["by_revision"].items() if s.get(200, 0) == 0 and s.get(503, 0) > 0}
        if entries:
            span = max(60.0, (now - min(e["time"] for e in entries if e["time"])).total_seconds())
            rates.append((len(entries), span))
        if len(state.serving) > 1 or sum(1 for t in state.serving if t.percent > 0) > 1:
            contention.append((summary, broken))
        raw = state.raw
        template = raw.get("template", {})
        connector = template.get("vpcAccess", {}).get("connector", "")
        svc: dict[str, Any] = {
            "name": cfg.name,
            "kind": "auth" if login_host and login_host in hosts else "backend",
            "hosts": sorted(hosts, key=lambda h: (h not in known, h)),
            "updated_minutes_ago": round((now - state.update_time).total_seconds() / 60, 3),
            "named_revisions": bool(template.get("revision")),
        }
        if connector:
            svc["vpc_connector"] = short(connector)
        if raw.get("scaling"):
            sc = raw["scaling"]
            svc["scaling"] = {k: v for k, v in {
                "min_instance_count": int(sc.get("minInstanceCount", 0)),
                "max_instance_count": int(sc.get("maxInstanceCount", 0)),
                "scaling_mode": sc.get("scalingMode", "AUTOMATIC"),
                "manual_instance_count": int(sc["manualInstanceCount"]) if "manualInstanceCount" in sc else None,
            }.items() if v is not None}
        svc["traffic"] = [{k: v for k, v in {
            "revision": short(t["revision"]) if t.get("revision") else state.latest_ready,
            "percent": int(t.get("percent", 0)), "tag": t.get("tag")}.items() if v is not None}
            for t in raw.get("traffic", [])]
        svc["revisions"] = []
        for r in sorted(revisions, key=lambda r: r.create_time):
            container = (r.raw.get("containers") or [{}])[0]
            scaling = r.raw.get("scaling", {})
            startup = logging.startup_errors(cfg.name, r.name, r.create_time)
            if startup.errors > len(startup.examples):
                gaps.append(f"{cfg.name}/{r.name}: {startup.errors} startup errors logged, {len(startup.examples)} "
                            "kept (the gate reads a few examples)")
            valued = [e for e in container.get("env", []) if "valueSource" in e]
            if valued:
                gaps.append(f"{cfg.name}/{r.name}: env {', '.join(e['name'] for e in valued)} come from Secret "
                            f"Manager; the twin carries them as plain {HIDDEN} values")
            svc["revisions"].append({
                "name": r.name,
                "created_minutes_ago": round((now - r.create_time).total_seconds() / 60, 3),
                "min_instances": int(scaling.get("minInstanceCount", 0)),
                "max_instances": int(scaling.get("maxInstanceCount", 0)) or 100,
                "image": container.get("image", ""),
                "env": {k: (v if k in keep else HIDDEN) for k, v in r.env}
                       | {e["name"]: HIDDEN for e in valued},
                "broken": r.name in broken,
                "startup_errors": [scrub(t, secrets) for t in startup.examples],
            })
        if broken:
            gaps.append(f"{cfg.name}: revision(s) {', '.join(sorted(broken))} answered only 503 in the request log; "
                        "the twin serves them as broken (503 to every request)")
        services.append(svc)
    scenario["services"] = services
    if rates:
        count, span = max(rates)
        minutes = max(1, int(round(span / 60)))
        scenario["history"] = {"minutes": minutes, "requests_per_minute": max(1, int(round(count / (span / 60))))}
    if contention:
        scenario["contention"] = _contention(contention)
    gaps.append("the request log is summarised (rate, 503 share and latency range of a split service), not "
                "copied: the twin regenerates entries with its own pattern")

    # ---- the connector ----------------------------------------------------------------------------
    if target.connector:
        conn = VpcAccess(session).get(target.connector.name)
        metrics = monitoring.connector_metrics(target.connector.name,
                                               now - timedelta(minutes=target.thresholds.metric_window_minutes))
        users = tuple(s["name"] for s in services if s.get("vpc_connector") == target.connector.name)
        errors = logging.connector_errors(target.connector.name, users,
                                          now - timedelta(minutes=target.thresholds.connector_log_minutes))
        carried = max((v for _, v in metrics.throughput), default=0.0)
        saturated = any(p95 >= SATURATED for _, p95, _mean in metrics.cpu)
        load = carried * SATURATED_LOAD_FACTOR if saturated else carried
        if saturated:
            gaps.append(f"connector {conn.name}: saturated (CPU p95 ≥ {SATURATED:.0%}); its true egress is above the "
                        f"{carried:.0f} Mbps it carried; the twin is asked for {SATURATED_LOAD_FACTOR:g}× that")
        raw = conn.raw
        scenario["connector"] = {
            "name": conn.name, "state": conn.state, "machine_type": conn.machine_type or "e2-micro",
            "min_instances": conn.min_instances, "max_instances": conn.max_instances,
            "network": raw.get("network", "default"), "ip_cidr_range": raw.get("ipCidrRange", "10.8.0.0/28"),
            "load_mbps": round(load, 3),
            "errors_per_minute": (max(1, round(errors.egress_errors / target.thresholds.connector_log_minutes))
                                  if errors.egress_errors else 0),
            "reports_metrics": bool(metrics.cpu or metrics.instances or metrics.throughput),
        }

    # ---- Cloud SQL ------------------------------------------------------------------------------
    if target.database:
        inst = CloudSql(session).get(target.database.instance)
        series = monitoring.num_backends(target.database.instance, target.thresholds.metric_window_minutes,
                                         target.database.metric_alignment_seconds)
        sql: dict[str, Any] = {
            "name": inst.name, "database_version": inst.raw.get("databaseVersion", "POSTGRES_15"),
            "tier": inst.tier, "flags": dict(inst.flags), "settings_version": max(1, inst.settings_version),
            "backends": int(round(series.latest or 0)),
        }
        if series.series <= 1:
            sql["system_databases"] = {}
        scenario["sql"] = sql
        gaps.append(f"num_backends: the newest of {len(series.points)} points ({sql['backends']}) is kept, as a flat "
                    "history; how pools grow after a max_connections change (backends_follow_max) is not observable")

    # ---- Monitoring --------------------------------------------------------------------------------
    channels = monitoring.notification_channels()
    scenario["notification_channels"] = []
    for ch in channels:
        labels = ch.get("labels", {})
        item = {"id": short(ch["name"]), "type": ch.get("type", "email"), "display_name": ch.get("displayName", "")}
        if ch.get("type") == "email" and labels.get("email_address"):
            item["email"] = labels["email_address"]
        dropped = sorted(k for k in labels if not (k == "email_address" and ch.get("type") == "email"))
        if dropped:
            gaps.append(f"notification channel {item['id']}: labels {', '.join(dropped)} not captured (they may hold "
                        "a token or a webhook URL)")
        scenario["notification_channels"].append(item)
    scenario["log_metrics"] = [{"name": m["name"], "filter": m["filter"], "description": m.get("description", "")}
                               for m in logging.list_metrics()]
    policies = monitoring.alert_policies()
    scenario["alert_policies"] = [json.loads(scrub(json.dumps(p), secrets)) for p in policies]
    boards = Dashboards(session).list(f"projects/{target.project}")
    scenario["dashboards"] = [json.loads(scrub(json.dumps(d), secrets)) for d in boards]
    return Capture(scenario, gaps)


def _login_service(target: Target, login_host: str) -> str | None:
    """The service the Golden Path logs in to: the one whose endpoints are on the login host, else one
    named like an auth service."""
    for s in target.services:
        if any(urlsplit(u).hostname == login_host for u in [s.health_url or "", *s.health_endpoints] if u):
            return s.name
    return next((s.name for s in target.services if "auth" in s.name), None)


def _summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    by_revision: dict[str, dict[int, int]] = {}
    for e in entries:
        counts = by_revision.setdefault(e["revision"] or "", {})
        counts[int(e["status"] or 0)] = counts.get(int(e["status"] or 0), 0) + 1
    return {"by_revision": by_revision, "entries": entries}


def _contention(split: list[tuple[dict[str, Any], set[str]]]) -> dict[str, Any]:
    """The twin's contention model from split services' logs: the 503 share of the requests the
    healthy revisions answered, and the latency range of those answers (5th to 95th percentile)."""
    answered = [e for summary, broken in split for e in summary["entries"] if e["revision"] not in broken]
    if not answered:
        return {}
    rate = sum(1 for e in answered if e["status"] == 503) / len(answered)
    latencies = sorted(e["latency"] for e in answered if e["latency"] is not None and e["status"] == 200)
    out: dict[str, Any] = {"error_rate": round(rate, 3)}
    if latencies:
        lo = latencies[int(0.05 * (len(latencies) - 1))]
        hi = latencies[int(0.95 * (len(latencies) - 1))]
        out["latency_seconds"] = [round(lo, 3), round(max(hi, lo), 3)]
    return out


# ---- a small TOML writer (the standard library reads TOML, it does not write it) ----------------

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        items = [f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(data: dict[str, Any]) -> str:
    """``data`` as TOML: scalars first, then a table per dict, an array of tables per list of dicts;
    anything nested deeper is written inline."""
    plain = [f"{_key(k)} = {_value(v)}" for k, v in data.items()
             if v is not None and not isinstance(v, dict) and not (isinstance(v, list) and v and
                                                                      all(isinstance(x, dict) for x in v))]
    out = ["\n".join(plain)]
    for k, v in data.items():
        if isinstance(v, dict):
            out.append(f"[{_key(k)}]\n" + "\n".join(f"{_key(a)} = {_value(b)}" for a, b in v.items() if b is not None))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                out.append(f"[[{_key(k)}]]\n" + "\n".join(f"{_key(a)} = {_value(b)}" for a, b in item.items()
                                                         if b is not None))
    return "\n\n".join(out) + "\n"


def write(target: Target, out: Path) -> list[str]:
    """Capture ``target`` into ``out``; the gaps (also in the file's header), for the caller to print."""
    cap = capture(target)
    out.write_text(cap.toml(target.name))
    return cap.gaps
