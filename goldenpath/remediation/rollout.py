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
from goldenpath.remediation.change import Change


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
        restored = run.set_template(p["service"], p["restore"], expected_etag=routed.etag)
        if "tags" in applied and tags_of(restored.raw) != applied["tags"]:
            raise CheckError(f"{p['service']}: traffic tags changed during the rollout (were {applied['tags']}, now "
                             f"{tags_of(restored.raw)}): someone else is changing the service; check its traffic by hand")
        return {"serving": restored.split_text(), "template": template_spec(restored.raw, list(p["restore"])),
                "tags": tags_of(restored.raw)}

    def restored(self, change: Change) -> tuple[bool, str]:
        p = change.payload
        state = self.observer.run.get_service(p["service"])
        serving_ok = [(s.revision, s.percent) for s in state.holding_traffic] == [(p["previous"], 100)]
        template_ok = template_spec(state.raw, list(p["restore"])) == p["restore"]
        return serving_ok and template_ok, (f"{state.name} serves {state.split_text()}; template "
                                            f"{'as before' if template_ok else 'still changed'}")
