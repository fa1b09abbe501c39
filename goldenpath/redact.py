"""Keep environment values out of what the gate writes down (journal, reports, attachments).

A service's plain environment may hold secrets someone set as plain values. What the gate records
shows each variable's name, and the value only for variables the target itself requires (settings
such as DEMO_MODE=0, which the report must show).
"""

from __future__ import annotations

from typing import Any, Iterable

ENV_KEYS = ("env", "restore_env")  # restore_env: journals written before the rollout payload was generalised
HIDDEN = "<redacted>"


def redact(value: Any, keep: Iterable[str] = ()) -> Any:
    keep = frozenset(keep)
    return _walk(value, keep)


def _walk(value: Any, keep: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: _env(v, keep) if k in ENV_KEYS else _walk(v, keep) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_walk(v, keep) for v in value]
    return value


def _env(value: Any, keep: frozenset[str]) -> Any:
    if isinstance(value, dict):  # {"NAME": "value"}: a summary of variables
        return {k: v if k in keep else HIDDEN for k, v in value.items()}
    if not isinstance(value, (list, tuple)):
        return value
    out: list[Any] = []
    for item in value:
        if isinstance(item, dict) and "name" in item:  # the API's EnvVar (a valueSource has no value)
            hide = "value" in item and item["name"] not in keep
            out.append({**item, "value": HIDDEN} if hide else item)
        elif isinstance(item, (list, tuple)) and len(item) == 2:  # (name, value) pairs in payloads
            out.append([item[0], item[1] if item[0] in keep else HIDDEN])
        else:
            out.append(_walk(item, keep))
    return out
