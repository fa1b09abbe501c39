"""Phase 4 success metrics (runbook: "Phase 4: Monitoring Setup", "Prevention Measures").

Each criterion compares the monitoring as it is with the definitions in ``monitoring/`` by meaning
(:mod:`goldenpath.semantic`) and says exactly what is missing or different, field by field; the
evidence carries the same as a unified diff.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Mapping, Sequence

from goldenpath.config import Target
from goldenpath.definitions import POLICY_LABEL, Definitions
from goldenpath.observations import Phase4Observation, RevisionState
from goldenpath.semantic import differences
from goldenpath import sources as src
from goldenpath.criteria import CRITICAL, NORMAL, Criterion, Seen
from goldenpath.criteria import evaluate as derive
from goldenpath.verdict import Status, Verdict

ERROR_MONITORING = "error_monitoring_active"
ALERT_POLICIES = "alert_policies_configured"
CAPACITY = "capacity_thresholds_established"
DASHBOARD = "dashboard_operational"

TITLES = {
    ERROR_MONITORING: "Error monitoring active",
    ALERT_POLICIES: "Alert policies configured",
    CAPACITY: "Capacity thresholds established",
    DASHBOARD: "Dashboard monitoring operational",
}


# ---- shared with the remediation plan ----------------------------------------------------------

def find_policy(policies: Sequence[dict[str, Any]], pid: str, definition: dict[str, Any]) -> dict[str, Any] | None:
    """The project's policy for a definition: by the gate's label, else by display name (a policy
    made by hand from the runbook's YAML is adopted, not duplicated)."""
    labelled = [p for p in policies if p.get("userLabels", {}).get(POLICY_LABEL) == pid]
    if labelled:
        return labelled[0]
    named = [p for p in policies if p.get("displayName") == definition.get("displayName")]
    return named[0] if named else None


def policy_drift(definition: dict[str, Any], actual: dict[str, Any]) -> dict[str, list[str]]:
    """Differences per top-level field (the unit of an update mask)."""
    out = {}
    for key, value in definition.items():
        diff = differences(value, actual.get(key), key)
        if diff:
            out[key] = diff
    return out


def existing_channels(obs: Phase4Observation) -> set[str]:
    return {c["name"] for c in obs.channels}


def wanted_channels(obs: Phase4Observation, target: Target) -> list[str]:
    """The target's channels that exist: the ones a policy should notify."""
    have = existing_channels(obs)
    return [c for c in target.channel_names() if c in have]


def channel_instructions(target: Target) -> str:
    return (f"create a notification channel (Cloud console → Monitoring → Alerting → Edit notification channels, "
            f"or `gcloud beta monitoring channels create --type=email --channel-labels=email_address=ONCALL "
            f"--project={target.project}`), put its id in {target.source} under targets.{target.name}.monitoring."
            "notification_channels, and run with --remediate to attach it")


def autoscaling_drift(target: Target, serving: RevisionState | None, service: str) -> list[str]:
    cfg = target.service(service).autoscaling
    if cfg is None:
        return []
    if serving is None:
        return [f"{service}: no single revision serves all traffic, so its autoscaling cannot be judged (Phase 1)"]
    raw = serving.raw
    scaling = raw.get("scaling", {})
    found = {"min instances": int(scaling.get("minInstanceCount", 0)),
             "max instances": int(scaling.get("maxInstanceCount", 0)),
             "concurrency": int(raw.get("maxInstanceRequestConcurrency", 0))}
    want = {"min instances": cfg.min_instances, "max instances": cfg.max_instances, "concurrency": cfg.concurrency}
    return [f"{service} ({serving.name}): {k} expected {v}, found {found[k] or 'unset'}"
            for k, v in want.items() if found[k] != v]


def metric_drift(definition: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """A log-based metric counts what its filter says, and nothing while it is disabled."""
    return differences({"filter": definition["filter"], "disabled": False}, actual)


def _projection(expected: Any, actual: Any) -> Any:
    """``actual`` cut down to the fields ``expected`` names, for a readable diff; what is equivalent
    is shown as defined, so the diff holds only real differences."""
    if not differences(expected, actual):
        return expected
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: _projection(v, actual[k]) for k, v in expected.items() if k in actual}
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [_projection(e, a) for e, a in zip(expected, actual)]
    return actual


def unified(name: str, expected: Any, actual: Any | None) -> str:
    a = [] if actual is None else json.dumps(_projection(expected, actual), indent=2, sort_keys=True).splitlines()
    b = json.dumps(expected, indent=2, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(a, b, f"{name} (now)", f"{name} (defined)", lineterm=""))


def _verdict(criterion: str, subject: str, problems: list[str], ok: str, evidence: dict[str, Any],
             waiting: Sequence[str] = ()) -> Verdict:
    """Fail on any problem; else inconclusive while something is ``waiting`` (what cannot be shown
    yet, e.g. a policy the API refuses until a new metric is usable); else pass."""
    if problems:
        found = "; ".join([*problems, *waiting])
        return Verdict(criterion, subject, Status.FAIL, f"{subject}: {found}", evidence, value=found)
    if waiting:
        found = "; ".join(waiting)
        return Verdict(criterion, subject, Status.INCONCLUSIVE, f"{subject}: {found}", evidence, value=found)
    return Verdict(criterion, subject, Status.PASS, f"{subject}: {ok}", evidence, value=ok)


def _pending_line(label: str, why: str) -> str:
    return f"{label} pending: {why}"


# ---- the criteria --------------------------------------------------------------------------------

def error_monitoring(obs: Phase4Observation, defs: Definitions) -> Verdict:
    """The log-based metrics exist, with filters equivalent to their definitions."""
    problems, diffs = [], []
    missing = [n for n in defs.log_metrics if obs.log_metrics.get(n) is None]
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
    for name, definition in defs.log_metrics.items():
        actual = obs.log_metrics.get(name)
        wanted = {"filter": definition["filter"], "disabled": False}
        if actual is None:
            diffs.append(unified(f"logMetrics/{name}", wanted, None))
            continue
        diff = metric_drift(definition, actual)
        if diff:
            problems.append(f"{name} differs: {'; '.join(diff)}")
            diffs.append(unified(f"logMetrics/{name}", wanted, actual))
    return _verdict(ERROR_MONITORING, "log-based metrics", problems,
                    f"{', '.join(defs.log_metrics)} exist with their defined filters",
                    {"missing": missing, "diff": "\n".join(diffs)})


def alert_policies(obs: Phase4Observation, defs: Definitions, target: Target,
                   require_channels: bool = True, pending: Mapping[str, str] | None = None) -> Verdict:
    """Each defined policy exists, is enabled, matches its definition and notifies an existing
    channel. ``require_channels=False`` judges only what remediation can establish (verification).
    ``pending``: policies (by definition id) this run's remediation could not write yet, and why;
    while one is still not as defined, the verdict is inconclusive rather than failed."""
    have, wanted = existing_channels(obs), wanted_channels(obs, target)
    problems, diffs, missing, waiting = [], [], [], []
    no_channel = []
    for pid, definition in defs.alert_policies.items():
        actual = find_policy(obs.policies, pid, definition)
        label = f"'{definition['displayName']}'"
        if pid in (pending or {}) and (actual is None or policy_drift(definition, actual)):
            waiting.append(_pending_line(label, (pending or {})[pid]))
            diffs.append(unified(f"alertPolicies/{pid}", definition, actual))
            continue
        if actual is None:
            missing.append(label)
            diffs.append(unified(f"alertPolicies/{pid}", definition, None))
            continue
        drift = [line for lines in policy_drift(definition, actual).values() for line in lines]
        attached = actual.get("notificationChannels", [])
        absent = [c for c in wanted if c not in attached]
        if absent:
            drift.append(f"notificationChannels: expected to include {', '.join(absent)}")
        if drift:
            problems.append(f"{label} differs: {'; '.join(drift)}")
            diffs.append(unified(f"alertPolicies/{pid}", definition, actual))
        dangling = [c for c in attached if c not in have]
        if dangling:
            problems.append(f"{label} notifies channel(s) that do not exist: {', '.join(dangling)}")
        if require_channels and not any(c in have for c in attached):
            no_channel.append(label)
    if missing:
        problems.insert(0, f"missing: {', '.join(missing)}")
    unknown = [c for c in target.channel_names() if c not in have]
    if require_channels and (no_channel or unknown):
        why = []
        if unknown:
            why.append(f"targets.toml names channel(s) that do not exist in project {target.project}: "
                       f"{', '.join(unknown)}")
        elif not target.channel_names():
            why.append("targets.toml names no notification channel")
        if no_channel:
            why.append(f"no existing notification channel is attached to {', '.join(no_channel)}")
        problems.append(f"{'; '.join(why)}: {channel_instructions(target)}")
    return _verdict(ALERT_POLICIES, "alert policies", problems,
                    f"{len(defs.alert_policies)} policies exist, enabled, as defined, notifying "
                    f"{', '.join(wanted) or 'their channels'}",
                    {"missing": missing, "pending": dict(pending or {}), "channels": sorted(have),
                     "diff": "\n".join(diffs)}, waiting)


def capacity(obs: Phase4Observation, defs: Definitions, target: Target,
             pending: Mapping[str, str] | None = None) -> Verdict:
    """Every defined threshold is watched by an enabled policy (any policy of the project, not only
    the gate's), and the services' serving revisions scale as the target says. A threshold whose
    policy is ``pending`` (see :func:`alert_policies`) is inconclusive, not failed."""
    problems, covered, waiting = [], [], []
    enabled = [p for p in obs.policies if p.get("enabled", True) is not False]
    for pid, definition in defs.alert_policies.items():
        for cond in definition.get("conditions", []):
            threshold = cond.get("conditionThreshold")
            if threshold is None:
                continue
            hit = next((p for p in enabled for c in p.get("conditions", [])
                        if c.get("conditionThreshold") and not differences(threshold, c["conditionThreshold"])), None)
            if hit is None and pid in (pending or {}):
                waiting.append(_pending_line(f"'{cond['displayName']}' ({pid})", (pending or {})[pid]))
            elif hit is None:
                problems.append(f"'{cond['displayName']}' is not watched by an enabled policy ({pid})")
            else:
                covered.append(f"{cond['displayName']} ({hit.get('displayName')})")
    scaling = [line for name in obs.services for line in autoscaling_drift(target, obs.serving.get(name), name)]
    problems += scaling
    scaled = [s.name for s in target.services if s.autoscaling is not None]
    return _verdict(CAPACITY, "thresholds and autoscaling", problems,
                    f"{len(covered)} thresholds watched ({'; '.join(covered)}); autoscaling as defined for "
                    f"{', '.join(scaled) or 'no service (none configured)'}",
                    {"covered": covered, "autoscaling": scaling, "pending": dict(pending or {})}, waiting)


def dashboard(obs: Phase4Observation, defs: Definitions) -> Verdict:
    """Each defined dashboard exists and shows the widgets its definition names, as defined."""
    problems, diffs, shown = [], [], []
    for name, definition in defs.dashboards.items():
        actual = obs.dashboards.get(name)
        label = f"'{definition.get('displayName', name)}'"
        if actual is None:
            problems.append(f"{label} is missing ({name})")
            diffs.append(unified(name, definition, None))
            continue
        want, have = widgets(definition), widgets(actual)
        absent = [t for t in want if t not in have]
        if absent:
            problems.append(f"{label} lacks widget(s): {', '.join(absent)}")
        drift = [line for title, w in want.items() if title in have for line in differences(w, have[title], title)]
        drift += differences(definition.get("displayName"), actual.get("displayName"), "displayName")
        if drift:
            problems.append(f"{label} differs: {'; '.join(drift)}")
        if absent or drift:
            diffs.append(unified(name, {"displayName": definition.get("displayName"), "widgets": want},
                                 {"displayName": actual.get("displayName"), "widgets": have}))
        shown.append(f"{label} ({len(want)} widgets: {', '.join(want)})")
    return _verdict(DASHBOARD, "dashboard", problems, "; ".join(shown), {"diff": "\n".join(diffs)})


def widgets(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Widgets by title, whatever the layout."""
    layout: dict[str, Any] = next((dashboard[k] for k in ("mosaicLayout", "gridLayout", "rowLayout", "columnLayout")
                   if k in dashboard), {})
    widgets: list[dict[str, Any]] = []
    widgets += [t.get("widget", {}) for t in layout.get("tiles", [])]
    widgets += layout.get("widgets", [])
    for key in ("rows", "columns"):  # rowLayout / columnLayout (a mosaic's "columns" is a number)
        groups = layout.get(key)
        if isinstance(groups, list):
            widgets += [w for g in groups for w in g.get("widgets", [])]
    return {w.get("title", ""): w for w in widgets}


# Step kinds of goldenpath/remediation/phase4.py (the criteria name them; they do not import them).
CREATE_METRIC, UPDATE_METRIC = "create-log-metric", "update-log-metric"
CREATE_POLICY, UPDATE_POLICY = "create-alert-policy", "update-alert-policy"
CREATE_DASHBOARD, UPDATE_DASHBOARD = "create-dashboard", "update-dashboard"
AUTOSCALE = "autoscale-service"


def _defs(s: Seen) -> Definitions:
    assert s.defs is not None, "phase 4 is judged against its definitions"
    return s.defs


RECORDS = (
    Criterion(ERROR_MONITORING, 4, TITLES[ERROR_MONITORING], CRITICAL, "phase4",
              lambda s, _: error_monitoring(s.obs, _defs(s)), steps=(CREATE_METRIC, UPDATE_METRIC),
              sources=(src.LOG_METRICS,)),
    Criterion(ALERT_POLICIES, 4, TITLES[ALERT_POLICIES], CRITICAL, "phase4",
              lambda s, _: alert_policies(s.obs, _defs(s), s.t, s.require_channels, s.pending),
              steps=(CREATE_POLICY, UPDATE_POLICY),
              manual="create a notification channel and name it in targets.toml (see the criterion's message)",
              sources=(src.ALERT_POLICIES, src.CHANNELS)),
    Criterion(CAPACITY, 4, TITLES[CAPACITY], NORMAL, "phase4",
              lambda s, _: capacity(s.obs, _defs(s), s.t, s.pending),
              steps=(CREATE_POLICY, UPDATE_POLICY, AUTOSCALE),
              sources=(src.ALERT_POLICIES, src.RUN_SERVICE, src.RUN_REVISIONS)),
    Criterion(DASHBOARD, 4, TITLES[DASHBOARD], NORMAL, "phase4",
              lambda s, _: dashboard(s.obs, _defs(s)), steps=(CREATE_DASHBOARD, UPDATE_DASHBOARD),
              sources=(src.DASHBOARD,)),
)
BY_ID = {r.id: r for r in RECORDS}


def evaluate(obs: Phase4Observation, defs: Definitions, target: Target, require_channels: bool = True,
             pending: Mapping[str, str] | None = None) -> list[Verdict]:
    return derive(RECORDS, Seen(target, obs, defs, dict(pending or {}), require_channels))
