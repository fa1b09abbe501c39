"""Encode the world's resources through the client libraries' own message types.

Every body the control plane returns passes through ``Message.from_json`` (unknown fields are an
error) and ``Message.to_json`` with the REST conventions (enum names, no default values). A field
the real API does not have therefore fails in the twin, not in a user's incident.
"""

from __future__ import annotations

import json
from typing import Any

from google.cloud import run_v2
from google.cloud.logging_v2.types import LogEntry

# Any: proto-plus message classes get `meta` from their metaclass, which proto-plus does not declare.
_RUN_TYPES: dict[str, Any] = {"service": run_v2.Service, "revision": run_v2.Revision}


def _roundtrip(message_type: Any, body: dict[str, Any]) -> dict[str, Any]:
    msg = message_type.from_json(json.dumps(body), ignore_unknown_fields=False)
    text = message_type.to_json(
        msg, use_integers_for_enums=False, always_print_fields_with_no_presence=False, indent=None
    )
    return json.loads(text)


def service(body: dict[str, Any]) -> dict[str, Any]:
    return _roundtrip(run_v2.Service, body)


def revision(body: dict[str, Any]) -> dict[str, Any]:
    return _roundtrip(run_v2.Revision, body)


def log_entry(body: dict[str, Any]) -> dict[str, Any]:
    return _roundtrip(LogEntry, body)


def parse_service(text: bytes) -> dict[str, Any]:
    """Decode a request body the way the API would: unknown fields are INVALID_ARGUMENT."""
    return _roundtrip(run_v2.Service, json.loads(text or b"{}"))


def operation(op: dict[str, Any], kind: str) -> dict[str, Any]:
    """A google.longrunning.Operation whose metadata and response are Cloud Run resources."""
    message_type = _RUN_TYPES[kind]
    type_url = f"type.googleapis.com/{message_type.meta.full_name}"
    out: dict[str, Any] = {"name": op["name"], "done": op["done"]}
    if op.get("metadata") is not None:
        out["metadata"] = {"@type": type_url, **_roundtrip(message_type, op["metadata"])}
    if op["done"] and op.get("error") is not None:
        # google.rpc.Status: a failed operation carries its error instead of a response.
        out["error"] = {"code": int(op["error"]["code"]), "message": str(op["error"]["message"])}
    elif op["done"] and op.get("response") is not None:
        out["response"] = {"@type": type_url, **_roundtrip(message_type, op["response"])}
    return out
