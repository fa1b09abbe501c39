"""A template change rolled out as a new revision, with traffic moved only once it is ready.

Phase 3 (the required environment) and Phase 4 (autoscaling) change a Cloud Run service the same
way: the template gets the change (a new revision, validate_only first, etag-guarded); once that
revision is ready, 100 % of traffic moves to it. Rollback puts traffic back on the previous
revision and restores the template's previous values; restored() checks both. Every traffic tag
stays as it was (the traffic moves of :meth:`goldenpath.gcp.run.CloudRun.set_traffic` keep them).

A deploy can fail: the operation ends in error (a revision that never became ready), the service
keeps serving what it served. Then traffic is not touched, the template is restored, the restore is
checked, and the step fails with one paragraph that says all of it.

A change's payload: ``service``, ``previous`` (the revision serving before), ``template`` (what to
set, in :func:`goldenpath.gcp.run.template_spec`'s shape) and ``restore`` (the same keys as they were).
"""

from __future__ import annotations

from typing import Any

from goldenpath.errors import CheckError
from goldenpath.gcp.run import tags_of, template_spec
from goldenpath.observations import TrafficShare
from goldenpath.observe import Observer
from goldenpath.redact import HIDDEN
from goldenpath.remediation.change import LANDED, NOT_LANDED, UNKNOWN, Change, Found
from goldenpath.remediation.remedy import settled


class Rollout:
    def __init__(self, observer: Observer) -> None:
        self.observer = observer

    def apply(self, change: Change) -> dict[str, Any]:
        p = change.payload
        run = self.observer.run
        try:
            deployed = run.set_template(p["service"], p["template"], expected_etag=change.expected_etag)
        except Exception as exc:
            # The deploy failed (its operation ended in error) or was refused: traffic has not moved;
            # never leave the template half-changed.
            raise CheckError(f"{p['service']}: the new revision did not deploy: {exc} Traffic was not moved. "
                             f"{self._restore_after_failure(change)}") from exc
        new = deployed.latest_ready
        if new == p["previous"]:
            run.set_template(p["service"], p["restore"], expected_etag=deployed.etag)
            raise CheckError(f"{p['service']}: the new revision never became ready (latest ready is still {new}); "
                             "the template was restored")
        try:
            routed = run.set_traffic(p["service"], [TrafficShare(new, 100)], expected_etag=deployed.etag)
        except Exception:
            run.set_template(p["service"], p["restore"])
            raise
        return {"new_revision": new, "etag": routed.etag, "tags": tags_of(deployed.raw)}

    def _restore_after_failure(self, change: Change) -> str:
        p = change.payload
        try:
            self.observer.run.set_template(p["service"], p["restore"])
            ok, detail = self.restored(change)
        except Exception as exc:
            return (f"Restoring the template FAILED ({exc}): restore {', '.join(p['restore'])} of {p['service']} "
                    "by hand from the journal's 'before'.")
        return (f"The template was restored and checked: {detail}." if ok else
                f"The template was restored, but the check does not hold: {detail}; compare with the journal's "
                "'before' and restore by hand.")

    def rollback(self, change: Change, applied: dict[str, Any]) -> dict[str, Any]:
        p = change.payload
        run = self.observer.run
        routed = run.set_traffic(p["service"], [TrafficShare(p["previous"], 100)], expected_etag=applied.get("etag", ""))
        restored = run.set_template(p["service"], self._restore_spec(change), expected_etag=routed.etag)
        if "tags" in applied and tags_of(restored.raw) != applied["tags"]:
            raise CheckError(f"{p['service']}: traffic tags changed during the rollout (were {applied['tags']}, now "
                             f"{tags_of(restored.raw)}): someone else is changing the service; check its traffic by hand")
        return {"serving": restored.split_text(), "template": template_spec(restored.raw, list(p["restore"])),
                "tags": tags_of(restored.raw)}

    def _restore_spec(self, change: Change) -> dict[str, Any]:
        """The template values to put back. A change rebuilt from the journal (``--recover``) has the
        values of variables the target does not require redacted: those come from the previous
        revision itself, which Cloud Run keeps unchanged (a revision is immutable)."""
        p = change.payload
        restore = p["restore"]
        if not any(v == HIDDEN for _, v in restore.get("env", [])):
            return dict(restore)
        previous = next((r for r in self.observer.run.list_revisions(p["service"]) if r.name == p["previous"]), None)
        if previous is None:
            raise CheckError(f"{p['service']}: the previous revision {p['previous']} no longer exists, and the journal "
                             "does not hold the values of its environment variables: restore the template by hand")
        values = dict(previous.env)
        return {**restore, "env": [[k, values.get(k, "") if v == HIDDEN else v] for k, v in restore["env"]]}

    def reconcile(self, change: Change) -> Found:
        p = change.payload
        keys = list(p["template"])
        state, still = settled(self.observer, lambda: self.observer.run.get_service(p["service"]),
                               lambda s: s.reconciling, f"{p['service']}'s rollout")
        template = template_spec(state.raw, keys)
        serving = [(s.revision, s.percent) for s in state.holding_traffic]
        new, old = _matches(template, p["template"]), _matches(template, p["restore"])
        detail = (f"{state.name} serves {state.split_text()}; its template has "
                  + ("the planned values" if new else "the values before" if old else "neither the values before nor "
                     "the planned ones") + ("" if still else "; still reconciling"))
        if not still:
            return Found(UNKNOWN, detail)
        if new and serving == [(state.latest_ready, 100)] and state.latest_ready != p["previous"]:
            return Found(LANDED, detail, {"new_revision": state.latest_ready, "etag": state.etag,
                                          "tags": tags_of(state.raw)})
        if old and serving == [(p["previous"], 100)]:
            return Found(NOT_LANDED, detail)
        if new:
            detail += (f" (half-changed: the template carries the new values on revision {state.latest_ready} but "
                       f"traffic is not on it; `gcloud run services update-traffic {p['service']} "
                       f"--to-revisions={p['previous']}=100` keeps the old one serving)")
        return Found(UNKNOWN, detail)

    def restored(self, change: Change) -> tuple[bool, str]:
        p = change.payload
        state = self.observer.run.get_service(p["service"])
        serving_ok = [(s.revision, s.percent) for s in state.holding_traffic] == [(p["previous"], 100)]
        template_ok = _matches(template_spec(state.raw, list(p["restore"])), p["restore"])
        return serving_ok and template_ok, (f"{state.name} serves {state.split_text()}; template "
                                            f"{'as before' if template_ok else 'still changed'}")


def _matches(actual: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """``actual`` equals ``wanted``, where a redacted value in ``wanted`` (a change rebuilt from the
    journal) matches any value of that variable."""
    if set(actual) != set(wanted):
        return False
    for key, value in wanted.items():
        if key == "env":
            got = actual.get("env", [])
            if len(got) != len(value) or any(a[0] != w[0] or (w[1] != HIDDEN and a[1] != w[1])
                                             for a, w in zip(got, value)):
                return False
        elif actual[key] != value:
            return False
    return True
