"""Keep environment values out of what the gate writes down (journal, reports, attachments).

A service's plain environment may hold secrets someone set as plain values. What the gate records
shows each variable's name, and the value only for variables the target itself requires (settings
such as DEMO_MODE=0, which the report must show).
"""

from __future__ import annotations

import re
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


# ---- secrets in what is logged (the debug trail) ------------------------------------------------

# Keys whose values are credentials wherever they appear in a structure (a login body, a header
# mapping, a token response). Compared case-insensitively, "-" and "_" alike.
SECRET_KEYS = frozenset({"password", "passwd", "token", "access_token", "refresh_token", "id_token",
                         "authorization", "proxy_authorization", "secret", "client_secret", "api_key",
                         "private_key", "cookie", "set_cookie"})
_KEY_ALTERNATIVES = "|".join(sorted((k.replace("_", "[-_]") for k in SECRET_KEYS), key=len, reverse=True))
# In text: "Authorization: Bearer x", "'password': 'x'", "token=x", "Bearer x" (quotes and all).
_TEXT_PATTERNS = (
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(rf"(?i)(['\"]?\b(?:{_KEY_ALTERNATIVES})\b['\"]?\s*[:=]\s*)(['\"]?)(?!<redacted>|(?:bearer|basic)\s)[^'\",}}&\s]+"),
)


def is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "_") in SECRET_KEYS


def redact_secrets(value: Any, keep: Iterable[str] = ()) -> Any:
    """``value`` with environment values hidden (as :func:`redact`, ``keep`` shown) and every
    credential-named key's value hidden (:data:`SECRET_KEYS`), at any depth."""
    return _secrets(redact(value, keep))


def _secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: HIDDEN if is_secret_key(k) and v not in (None, "") else _secrets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_secrets(v) for v in value]
    return value


def scrub_text(text: str, values: Iterable[str] = ()) -> str:
    """``text`` with known secret ``values`` and anything shaped like a credential (an
    Authorization header, a bearer token, ``password=…``) replaced by ``<redacted>``."""
    for secret in sorted((v for v in values if v), key=len, reverse=True):  # longest first: no half-masked value
        text = text.replace(secret, HIDDEN)
    text = _TEXT_PATTERNS[0].sub(lambda m: f"{m.group(1)} {HIDDEN}", text)
    return _TEXT_PATTERNS[1].sub(lambda m: f"{m.group(1)}{m.group(2)}{HIDDEN}", text)
