"""Compute Engine v1 ``sslCertificates`` (get, list) as world logic: the certificates of the scenario,
in the API's REST JSON. ``managed.status`` takes the API's values (ACTIVE, PROVISIONING, …).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from twin.store import ApiError, Store, rfc3339, roundtrip

if TYPE_CHECKING:
    from twin.scenario import Scenario


# ---- Compute Engine v1: SSL certificates --------------------------------------------------------


def _compute_types() -> Any:
    # compute_v1 takes ~2 s to import; only the first certificate request pays for it.
    from google.cloud import compute_v1

    return compute_v1


def _check_project(world: Store, project: str) -> None:
    if project != world.state["project"]:
        raise ApiError(404, "NOT_FOUND", f"The resource 'projects/{project}' was not found")


def get_certificate(world: Store, project: str, name: str) -> dict[str, Any]:
    _check_project(world, project)
    rec = world.state["certificates"].get(name)
    if rec is None:
        raise ApiError(404, "NOT_FOUND", f"The resource 'projects/{project}/global/sslCertificates/{name}' was not found")
    return roundtrip(_compute_types().SslCertificate, rec["resource"])


_NAME_FILTER = re.compile(r'^\s*name\s*(=|eq)\s*"?([^"\s]+)"?\s*$')


def list_certificates(world: Store, project: str, filter_: str | None, max_results: int,
                      page_token: str | None) -> dict[str, Any]:
    _check_project(world, project)
    if not 0 <= max_results <= 500:
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid value for field 'maxResults': {max_results}. Must be 0-500.")
    if page_token and not page_token.isdigit():
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid value for field 'pageToken': {page_token!r}.")
    items = [rec["resource"] for _, rec in sorted(world.state["certificates"].items())]
    if filter_:
        m = _NAME_FILTER.match(filter_)
        if not m:
            # Refused rather than ignored: an ignored filter would answer a question not asked.
            raise ApiError(400, "INVALID_ARGUMENT", f"The twin supports only `name = \"…\"` filters; got {filter_!r}.")
        items = [r for r in items if r["name"] == m.group(2)]
    start, size = int(page_token or 0), max_results or 500
    body: dict[str, Any] = {
        "kind": "compute#sslCertificateList",
        "id": f"projects/{project}/global/sslCertificates",
        "items": items[start:start + size],
        "selfLink": f"https://www.googleapis.com/compute/v1/projects/{project}/global/sslCertificates",
    }
    if start + size < len(items):
        body["nextPageToken"] = str(start + size)
    return roundtrip(_compute_types().SslCertificateList, body)



def seed(world: Store, sc: Scenario, now: float) -> None:
    world.state["certificates"] = {}
    for cert in sc.certificates:
        world.state["certificates"][cert.name] = {
            "resource": {
                "kind": "compute#sslCertificate",
                "id": str(int(hashlib.sha1(cert.name.encode()).hexdigest()[:12], 16)),
                "creationTimestamp": rfc3339(now - 90 * 86400),
                "name": cert.name,
                "selfLink": f"https://www.googleapis.com/compute/v1/projects/{sc.project}/global/sslCertificates/{cert.name}",
                "type": "MANAGED",
                "managed": {
                    "domains": list(cert.domains),
                    "status": cert.status,
                    "domainStatus": {d: "ACTIVE" if cert.status == "ACTIVE" else "PROVISIONING" for d in cert.domains},
                },
                "subjectAlternativeNames": list(cert.domains),
                "expireTime": rfc3339(now + cert.expires_in_days * 86400),
            },
        }


def status(world: Store) -> dict[str, Any]:
    # REST JSON as stored (and as served, minus the 2 s compute_v1 import the status page skips).
    return {"compute": {"sslCertificates": [r["resource"] for _, r in sorted(world.state["certificates"].items())]}}
