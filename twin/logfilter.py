"""The subset of the Cloud Logging query language the twin understands.

Conjunctions (``AND`` or plain whitespace) of ``field OP value`` comparisons, with OP one of
``= != > >= < <= :`` or the regular-expression operators ``=~`` and ``!~`` (RE2 syntax, matched
anywhere in the value unless anchored with ``^``/``$``, case-sensitive unless the pattern starts
with ``(?i)``: https://cloud.google.com/logging/docs/view/logging-query-language#regular-expressions;
Python's ``re`` accepts the RE2 subset used here). Anything else (OR, NOT, parentheses, functions) is refused with
INVALID_ARGUMENT rather than silently mis-evaluated: a twin that answered a query it did not
understand would let the suite pass for the wrong reason.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

SEVERITIES = ["DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"]

_TOKEN = re.compile(
    r"""\s*(?P<field>[A-Za-z_][\w.]*)\s*(?P<op>=~|!~|>=|<=|!=|=|>|<|:)\s*(?P<value>"(?:[^"\\]|\\.)*"|[^\s"()]+)\s*""",
)


class FilterError(ValueError):
    pass


def parse(filter_: str) -> list[tuple[str, str, str]]:
    terms: list[tuple[str, str, str]] = []
    rest = (filter_ or "").strip()
    while rest:
        m = _TOKEN.match(rest)
        if not m:
            raise FilterError(f"Unsupported filter syntax near: {rest[:40]!r}")
        value = m["value"]
        if value.startswith('"'):
            value = value[1:-1].replace('\\"', '"')
        terms.append((m["field"], m["op"], value))
        rest = rest[m.end():]
        if rest.startswith("AND ") or rest.startswith("AND\n"):
            rest = rest[4:].lstrip()
        elif rest.startswith(("OR ", "NOT ", "(", "-")):
            raise FilterError(f"The twin supports only AND-ed comparisons; got {rest[:40]!r}")
    return terms


def _lookup(entry: dict[str, Any], field: str) -> Any:
    cur: Any = entry
    for part in field.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _coerce(field: str, actual: Any, wanted: str) -> tuple[Any, Any]:
    if field == "severity":
        up = wanted.upper()
        if up not in SEVERITIES:
            raise FilterError(f"Unknown severity {wanted!r}; expected one of {', '.join(SEVERITIES)}")
        return SEVERITIES.index(actual or "DEFAULT"), SEVERITIES.index(up)
    if field in ("timestamp", "receiveTimestamp"):
        return _ts(actual), _ts(wanted)
    if isinstance(actual, (int, float)):
        try:
            return actual, float(wanted)
        except ValueError:
            return str(actual), wanted
    return str(actual), wanted


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise FilterError(f"Invalid regular expression {pattern!r}: {exc}") from None


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# "To improve query performance, Logging automatically indexes the following LogEntry fields"
# (https://cloud.google.com/logging/docs/analyze/custom-index).
INDEXED_FIELDS = frozenset({"resource.type", "logName", "severity", "timestamp", "insertId", "operation.id", "trace",
                            "httpRequest.status", "split.uid"})
INDEXED_PREFIXES = ("resource.labels.", "labels.")
# Which comparisons an index serves is not documented (not confirmed): the twin counts equality and
# ranges; a regular expression, a substring (:) or an inequality is evaluated entry by entry.
INDEXED_OPS = frozenset({"=", ">", ">=", "<", "<="})


def indexed(terms: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The terms of a parsed filter that Logging's automatic indexes answer without reading entries."""
    return [t for t in terms if t[1] in INDEXED_OPS and (t[0] in INDEXED_FIELDS or t[0].startswith(INDEXED_PREFIXES))]


def matches(filter_: str, entry: dict[str, Any]) -> bool:
    return matches_terms(parse(filter_), entry)


def matches_terms(terms: list[tuple[str, str, str]], entry: dict[str, Any]) -> bool:
    for field, op, wanted in terms:
        pattern = _regex(wanted) if op in ("=~", "!~") else None  # a bad pattern is refused, matching or not
        actual = _lookup(entry, field)
        if actual is None:
            if op in ("!=", "!~"):
                continue
            return False
        if op == ":":
            if wanted.lower() not in str(actual).lower():
                return False
            continue
        if op in ("=~", "!~"):
            if pattern is None or (pattern.search(str(actual)) is not None) != (op == "=~"):
                return False
            continue
        a, w = _coerce(field, actual, wanted)
        ok = {
            "=": a == w, "!=": a != w, ">": a > w, ">=": a >= w, "<": a < w, "<=": a <= w,
        }[op]
        if not ok:
            return False
    return True
