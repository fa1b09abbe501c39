"""Compare a definition with what an API returns, by meaning rather than by string.

Google's APIs hand a resource back with server fields added (names, records, etags), defaults
left out, numbers as doubles and durations as "300s"; a hand-edited resource may spell a filter
with other spacing, quoting or term order. Only the fields the definition names are compared,
and each by what it means, so a definition and the resource it produced are never "different".
"""

from __future__ import annotations

import re
from typing import Any

# Fields that hold a filter (Logging or Monitoring syntax), a duration, or an unordered list.
FILTER_KEYS = {"filter", "denominatorFilter"}
DURATION_KEYS = {"duration", "alignmentPeriod", "autoClose"}
UNORDERED_KEYS = {"groupByFields", "notificationChannels"}
# Lists whose items are matched by a name the definition gives them, not by position.
ITEM_KEYS = ("displayName", "title")

_OPS = (">=", "<=", "!=", "=~", "!~", "=", ":", ">", "<")
_AND = re.compile(r"\s+AND\s+")
_TERM = re.compile(r"^\s*(?P<lhs>[^\s=!<>:~]+)\s*(?P<op>" + "|".join(re.escape(o) for o in _OPS) + r")\s*(?P<rhs>.*?)\s*$")


def split_and(text: str) -> list[str]:
    """The top-level AND terms of a filter (not inside quotes or parentheses)."""
    terms, depth, quote, start, i = [], 0, "", 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and ch.isspace():
            m = _AND.match(text, i)
            if m:
                terms.append(text[start:i])
                start = i = m.end()
                continue
        i += 1
    terms.append(text[start:])
    return [t.strip() for t in terms if t.strip()]


def _term(term: str) -> str:
    m = _TERM.match(term)
    if m is None:
        return " ".join(term.split())
    lhs = m["lhs"].replace(".labels.", ".label.")  # Monitoring accepts both spellings
    rhs = m["rhs"]
    if len(rhs) >= 2 and rhs[0] == rhs[-1] and rhs[0] in "\"'":
        rhs = rhs[1:-1]
    return f"{lhs}{m['op']}{rhs}"


def normalize_filter(text: str) -> frozenset[str]:
    """A filter as the set of its AND terms, each with spacing, quoting and label spelling normalised."""
    return frozenset(_term(t) for t in split_and(text))


def seconds(value: Any) -> float | None:
    """ "300s", "300.000s", 300 → 300.0 (a Duration in REST JSON is a string ending in s)."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.endswith("s"):
        try:
            return float(value[:-1])
        except ValueError:
            return None
    return None


def _default(value: Any) -> bool:
    """A proto3 default, which REST JSON leaves out."""
    return value in (0, 0.0, "", False, None) or value == [] or value == {}


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 160 else text[:157] + "…"


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """What differs, one line per field: ``path: expected X, found Y``. Empty when equivalent."""
    key = path.rsplit(".", 1)[-1].split("[", 1)[0]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [] if actual is None and not any(differences(v, None) for v in expected.values()) else \
                [f"{path or '(resource)'}: expected {_show(expected)}, found {_show(actual)}"]
        out: list[str] = []
        for k, v in expected.items():
            sub = f"{path}.{k}" if path else k
            if k not in actual:
                # REST JSON leaves defaults out, nested all-default messages included.
                if differences(v, None, sub):
                    out.append(f"{sub}: expected {_show(v)}, found nothing")
                continue
            out += differences(v, actual[k], sub)
        return out
    if isinstance(expected, list):
        actual_list = actual if isinstance(actual, list) else ([] if actual is None else [actual])
        if key in UNORDERED_KEYS:
            if sorted(map(str, expected)) != sorted(map(str, actual_list)):
                return [f"{path}: expected {_show(sorted(map(str, expected)))}, found "
                        f"{_show(sorted(map(str, actual_list)))}"]
            return []
        named = next((k for k in ITEM_KEYS if expected and all(isinstance(x, dict) and k in x for x in expected)), None)
        if named:
            out = []
            by_name = {x.get(named): x for x in actual_list if isinstance(x, dict)}
            for item in expected:
                sub = f"{path}[{item[named]}]"
                if item[named] not in by_name:
                    out.append(f"{sub}: missing")
                else:
                    out += differences(item, by_name[item[named]], sub)
            return out
        if len(expected) != len(actual_list):
            return [f"{path}: expected {len(expected)} item(s), found {len(actual_list)}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual_list)):
            out += differences(e, a, f"{path}[{i}]")
        return out
    if key in FILTER_KEYS and isinstance(expected, str) and isinstance(actual, str):
        if normalize_filter(expected) != normalize_filter(actual):
            return [f"{path}: expected {_show(expected)}, found {_show(actual)}"]
        return []
    if key in DURATION_KEYS:
        if seconds(expected) != seconds(actual):
            return [f"{path}: expected {_show(expected)}, found {_show(actual)}"]
        return []
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        try:
            same = float(expected) == float(actual) if actual is not None else _default(expected)
        except (TypeError, ValueError):
            same = False
        return [] if same else [f"{path}: expected {_show(expected)}, found {_show(actual)}"]
    if expected != actual and not (_default(expected) and _default(actual)):
        return [f"{path}: expected {_show(expected)}, found {_show(actual)}"]
    return []
