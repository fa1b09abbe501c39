"""Phase 2 success metrics (runbook: "Phase 2: Infrastructure Validation")."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from goldenpath.config import CONNECTOR_THROUGHPUT_MBPS, Connector, Target, Thresholds
from goldenpath.observations import (
    CertificateState, ConnectorLog, ConnectorMetrics, ConnectorState, MetricSeries, Phase2Observation, SqlInstanceState, TlsResult,
)
from goldenpath import sources as src
from goldenpath.criteria import BLOCKER, CRITICAL, PER_DOMAIN, Criterion, Seen
from goldenpath.criteria import evaluate as derive
from goldenpath.verdict import Status, Verdict

CONNECTOR_READY = "connector_ready"
DB_CONNECTIONS = "db_connections"
NO_CONNECTOR_ERRORS = "no_connector_errors"
CERTIFICATE_VALID = "certificate_valid"

TITLES = {
    CONNECTOR_READY: "VPC connector status: READY",
    DB_CONNECTIONS: "Database connections < 75% utilization",
    NO_CONNECTOR_ERRORS: "No VPC connectivity errors in logs",
    CERTIFICATE_VALID: "SSL certificates valid for all domains",
}

# Cloud SQL for PostgreSQL's default max_connections by the tier's memory (GB lower bound → value),
# from the Cloud SQL documentation ("Maximum concurrent connections").
_DEFAULTS_BY_MEMORY = [(120, 1000), (60, 800), (30, 600), (15, 500), (7.5, 400), (6, 200), (3.75, 100),
                       (1.7, 50), (0, 25)]


def tier_memory_gb(tier: str) -> float | None:
    if tier == "db-f1-micro":
        return 0.6
    if tier == "db-g1-small":
        return 1.7
    if m := re.fullmatch(r"db-custom-(\d+)-(\d+)", tier):
        return int(m[2]) / 1024
    if m := re.fullmatch(r"db-n1-standard-(\d+)", tier):
        return 3.75 * int(m[1])
    if m := re.fullmatch(r"db-n1-highmem-(\d+)", tier):
        return 6.5 * int(m[1])
    return None


def effective_max_connections(instance: SqlInstanceState) -> tuple[int | None, str]:
    """The flag when set, else the tier's default; with where the number came from."""
    flag = instance.flag("max_connections")
    if flag is not None:
        return int(flag), "the max_connections flag"
    memory = tier_memory_gb(instance.tier)
    if memory is None:
        return None, f"tier {instance.tier} (default unknown)"
    value = next(v for floor, v in _DEFAULTS_BY_MEMORY if memory >= floor)
    return value, f"the default for tier {instance.tier}"


def name_matches(pattern: str, host: str) -> bool:
    """RFC 6125 matching: a wildcard stands for exactly one leftmost label (*.example.com)."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def connector_ready(conn: ConnectorState, expected: Connector) -> Verdict:
    problems = []
    if conn.state != "READY":
        problems.append(f"state {conn.state}")
    if conn.max_instances < expected.max_instances:  # more capacity than asked is fine: it cannot shrink anyway
        problems.append(f"max instances {conn.max_instances} (expected {expected.max_instances})")
    if conn.min_instances < expected.min_instances:
        problems.append(f"min instances {conn.min_instances} (expected {expected.min_instances})")
    if expected.machine_type and conn.machine_type != expected.machine_type:
        problems.append(f"machine type {conn.machine_type} (expected {expected.machine_type})")
    evidence = {"connector": conn.raw, "expected": expected.model_dump()}
    shape = f"{conn.min_instances}-{conn.max_instances} × {conn.machine_type}"
    if problems:
        return Verdict(CONNECTOR_READY, conn.name, Status.FAIL,
                       f"{conn.name}: {', '.join(problems)}; expected READY with the target's capacity", evidence)
    return Verdict(CONNECTOR_READY, conn.name, Status.PASS, f"{conn.name}: READY, {shape} instances", evidence)


def db_connections(instance: SqlInstanceState, backends: MetricSeries, thresholds: Thresholds,
                   since: datetime | None = None) -> Verdict:
    """Connections in use (the newest num_backends point, summed over the instance's databases by
    Cloud Monitoring) over the effective max_connections.

    ``since``: the last change to the instance; a point whose period starts before it describes (at
    least partly) the old instance.
    """
    limit, source = effective_max_connections(instance)
    evidence: dict[str, Any] = {"points": [(t.isoformat(), v) for t, v in backends.points[:20]], "max_connections": limit,
                "max_connections_from": source, "flags": dict(instance.flags),
                "aggregation": f"ALIGN_MEAN over {backends.period_seconds:g} s, REDUCE_SUM of {backends.series} "
                               "database series" if backends.period_seconds else "raw points"}

    def verdict(status: Status, value: str, more: str = "", escalation: bool = False) -> Verdict:
        return Verdict(DB_CONNECTIONS, instance.name, status, f"{instance.name}: {value}{more}", evidence,
                       value=value, escalation=escalation)

    if len(backends.points) < thresholds.min_points:
        return verdict(Status.INCONCLUSIVE,
                       f"only {len(backends.points)} num_backends points in the last {thresholds.metric_window_minutes} "
                       f"min", f" (at least {thresholds.min_points} needed); is the instance reporting metrics?")
    if limit is None:
        return verdict(Status.INCONCLUSIVE, f"cannot tell max_connections from {source}",
                       "; set the flag explicitly")
    if since is not None and not backends.newest_after(since):
        return verdict(Status.INCONCLUSIVE,
                       f"no num_backends point since the change at {since.strftime('%H:%M:%S UTC')} yet",
                       f" (newest {backends.points[0][0].strftime('%H:%M:%S UTC')}); Cloud Monitoring lags a few "
                       "minutes, run again shortly")
    used = backends.latest or 0.0
    share = used / limit
    evidence["utilization"] = round(share, 4)
    value = f"{used:.0f} of {limit} connections in use"
    measured = f" ({share:.0%}, max_connections from {source}; " \
               f"peak {backends.peak:.0f} in the last {thresholds.metric_window_minutes} min)"
    if share >= thresholds.db_utilization:
        escalation = share > thresholds.db_escalation
        above = f"; above the {thresholds.db_escalation:.0%} escalation trigger" if escalation else ""
        return verdict(Status.FAIL, value, f"{measured}{above}; expected below {thresholds.db_utilization:.0%}",
                       escalation)
    return verdict(Status.PASS, value, measured)


def no_connector_errors(log: ConnectorLog, metrics: ConnectorMetrics | None, conn: ConnectorState | None,
                        thresholds: Thresholds) -> Verdict:
    """"No VPC connectivity errors", judged on the signals Google documents for a connector.

    The runbook's query (``resource.type="vpc_access_connector"``) is still read and any entry it
    returns fails, but its emptiness is no evidence: Serverless VPC Access documents only audit
    logs. What is evidence: the connector's metrics (CPU of its instances, active instances
    against maxInstances, bytes sent and received against what its instances carry) and the socket
    errors the Cloud Run services behind it print. Logs can only fail the criterion; a pass needs
    metric points. With neither, it is INCONCLUSIVE.
    """
    name, th = log.connector, thresholds
    since = log.since.strftime("%H:%M:%S UTC")
    cpu = metrics.cpu if metrics else ()
    instances = metrics.instances if metrics else ()
    throughput = metrics.throughput if metrics else ()
    per_instance = CONNECTOR_THROUGHPUT_MBPS.get(conn.machine_type) if conn else None
    capacity = conn.max_instances * per_instance if conn and per_instance else None
    evidence: dict[str, object] = {
        "logs_since": log.since.isoformat(), "runbook_query_errors": log.runbook_errors,
        "services": list(log.services), "egress_errors": log.egress_errors, "examples": list(log.examples),
        "metrics_since": metrics.since.isoformat() if metrics else None,
        "cpu_p95": [(t.isoformat(), round(p, 4)) for t, p, _ in cpu[:20]],
        "instances": [(t.isoformat(), n) for t, n in instances[:20]],
        "throughput_mbps": [(t.isoformat(), round(v, 1)) for t, v in throughput[:20]],
        "capacity_mbps": capacity, "max_instances": conn.max_instances if conn else None,
        "machine_type": conn.machine_type if conn else None, "threshold": th.connector_load,
    }

    def verdict(status: Status, reason: str) -> Verdict:
        return Verdict(NO_CONNECTOR_ERRORS, name, status, f"{name}: {reason}", evidence)

    problems: list[str] = []
    plus = "+" if log.capped else ""
    if log.runbook_errors:
        problems.append(f"{log.runbook_errors}{plus} entries for the runbook's query "
                        f"(resource.type=vpc_access_connector, severity>=ERROR) since {since}")
    if log.egress_errors:
        example = f" (e.g. {log.examples[-1]!r})" if log.examples else ""
        problems.append(f"{log.egress_errors}{plus} connection timeouts/resets in the stdout/stderr of "
                        f"{', '.join(log.services)} since {since}{example}")
    cpu_peak = max((p for _, p, _ in cpu), default=None)
    if cpu_peak is not None and cpu_peak >= th.connector_load:
        problems.append(f"CPU p95 of its instances reached {cpu_peak:.0%} (expected below {th.connector_load:.0%})")
    mbps_peak = max((v for _, v in throughput), default=None)
    if mbps_peak is not None and capacity and conn is not None and mbps_peak >= th.connector_load * capacity:
        problems.append(f"carrying {mbps_peak:,.0f} Mbps of the ~{capacity:,} Mbps its {conn.max_instances} × "
                        f"{conn.machine_type} can (expected below {th.connector_load:.0%})")
    top = max((n for _, n in instances), default=None)
    at_max = conn is not None and top is not None and top >= conn.max_instances
    if problems:
        if at_max and conn is not None:
            problems.append(f"at its maximum of {conn.max_instances} instances: it cannot scale further")
        return verdict(Status.FAIL, "; ".join(problems) + "; expected no connectivity error and headroom")
    if len(cpu) < th.min_points and len(throughput) < th.min_points:
        metric_since = (metrics.since if metrics else log.since).strftime("%H:%M:%S UTC")
        return verdict(Status.INCONCLUSIVE,
                       f"not enough evidence: {len(cpu)} cpu/utilizations, {len(instances)} instances and "
                       f"{len(throughput)} sent/received_bytes_count points since {metric_since} (at least "
                       f"{th.min_points} needed), and no connection error in the logs of "
                       f"{', '.join(log.services) or 'any service using it'} since {since}. An empty log "
                       "proves nothing (Serverless VPC Access documents only audit logs; plain stderr lines "
                       "have no severity). Check in Metrics Explorer that vpcaccess.googleapis.com/connector/* "
                       f"report for resource vpc_access_connector, connector_name={name}, and that the services "
                       "log their connection errors to stdout/stderr")
    parts = []
    if cpu_peak is not None:
        parts.append(f"CPU p95 peak {cpu_peak:.0%}")
    if mbps_peak is not None:
        parts.append(f"{mbps_peak:,.0f} Mbps peak" + (f" of ~{capacity:,} Mbps" if capacity else ""))
    if top is not None:
        low = min(n for _, n in instances)
        parts.append(f"{low}-{top} instances of max {conn.max_instances if conn else '?'}"
                     + (" (at its maximum: no headroom left to scale)" if at_max else ""))
    return verdict(Status.PASS, f"{', '.join(parts)} (below {th.connector_load:.0%}) since "
                                f"{(metrics.since if metrics else log.since).strftime('%H:%M:%S UTC')}; "
                                f"no connection error in the logs of {', '.join(log.services) or 'any service'} "
                                f"since {since}")


def certificate_valid(domain: str, cert: CertificateState, tls: TlsResult, min_days: float,
                      now: datetime | None = None) -> Verdict:
    now = now or datetime.now(timezone.utc)
    problems = []
    if cert.type != "SELF_MANAGED" and cert.status != "ACTIVE":
        problems.append(f"certificate {cert.name} is {cert.status or 'not provisioned'}, not ACTIVE")
    covered = any(name_matches(pattern, domain) for pattern in (*cert.domains, *cert.subject_alt_names))
    if not covered:
        problems.append(f"certificate {cert.name} does not cover {domain} (it covers {', '.join(cert.subject_alt_names) or 'nothing'})")
    if cert.expire_time is not None:
        left = (cert.expire_time - now).total_seconds() / 86400
        if left < min_days:
            problems.append(f"certificate {cert.name} expires in {left:.0f} days (at least {min_days:g} wanted)")
    if not tls.verified:
        problems.append(f"live TLS to {domain} via {tls.address}: {tls.error}")
    elif tls.not_after is not None:
        left = (tls.not_after - now).total_seconds() / 86400
        if left < min_days:
            problems.append(f"the certificate served for {domain} expires in {left:.0f} days (at least {min_days:g} wanted)")
    evidence = {"certificate": cert.raw, "tls": {"address": tls.address, "verified": tls.verified, "error": tls.error,
                                                 "served_sans": list(tls.subject_alt_names),
                                                 "served_not_after": tls.not_after.isoformat() if tls.not_after else None}}
    if problems:
        return Verdict(CERTIFICATE_VALID, domain, Status.FAIL, f"{domain}: {'; '.join(problems)}", evidence)
    days = (tls.not_after - now).days if tls.not_after else None
    return Verdict(CERTIFICATE_VALID, domain, Status.PASS,
                   f"{domain}: covered by {cert.name} (ACTIVE); live TLS verifies"
                   + (f", valid {days} more days" if days is not None else ""), evidence)


# Step kinds of goldenpath/remediation/phase2.py (the criteria name them; they do not import them).
SCALE, RECREATE, FLAGS = "scale-connector", "recreate-connector", "set-database-flags"


def _connector_ready(s: Seen, _: str) -> Verdict:
    assert s.t.connector is not None
    return connector_ready(s.obs.connector, s.t.connector)


RECORDS = (
    Criterion(CONNECTOR_READY, 2, TITLES[CONNECTOR_READY], BLOCKER, "phase2", _connector_ready,
              needs=("connector",), steps=(SCALE, RECREATE), escalation="VPC connector cannot be restored",
              observed=lambda s, _: s.obs.connector is not None, sources=(src.VPC_CONNECTOR,)),
    Criterion(DB_CONNECTIONS, 2, TITLES[DB_CONNECTIONS], CRITICAL, "phase2",
              lambda s, _: db_connections(s.obs.instance, s.obs.backends, s.th, s.obs.backends_since),
              needs=("database",), steps=(FLAGS,), escalation="database connections remain above 90 %",
              escalate_on_value=True, observed=lambda s, _: s.obs.instance is not None and s.obs.backends is not None,
              sources=(src.SQL_INSTANCE, src.TIME_SERIES)),
    Criterion(NO_CONNECTOR_ERRORS, 2, TITLES[NO_CONNECTOR_ERRORS], CRITICAL, "phase2",
              lambda s, _: no_connector_errors(s.obs.connector_log, s.obs.connector_metrics, s.obs.connector, s.th),
              needs=("connector",), steps=(SCALE,), observed=lambda s, _: s.obs.connector_log is not None,
              sources=(src.VPC_CONNECTOR, src.RUN_SERVICE, src.LOG_ENTRIES, src.TIME_SERIES)),
    # Nothing Phase 2 changes can mend a certificate: its remediation never judges it.
    Criterion(CERTIFICATE_VALID, 2, TITLES[CERTIFICATE_VALID], CRITICAL, "phase2",
              lambda s, domain: certificate_valid(domain, s.obs.certificate, s.obs.tls[domain],
                                                  s.th.certificate_min_days),
              needs=("certificate",), per=PER_DOMAIN, verify="never", sources=(src.SSL_CERTIFICATE, src.TLS_HANDSHAKE),
              observed=lambda s, domain: s.obs.certificate is not None and domain in s.obs.tls,
              manual="renew or re-provision the certificate so it is ACTIVE, covers every domain and is far from "
                     "expiry (gcloud compute ssl-certificates describe / create), then run again"),
)
BY_ID = {r.id: r for r in RECORDS}


def evaluate(obs: Phase2Observation, target: Target, criteria: list[str] | None = None) -> list[Verdict]:
    """Every phase-2 verdict the observation allows (optionally only some criteria)."""
    return derive(RECORDS, Seen(target, obs), criteria or None)
