"""The single-file Allure report, made fit for stakeholders: no tracker, nothing loaded from outside.

Allure Report 3's awesome report embeds Google Analytics (a ``googletagmanager.com/gtag/js`` script and
an inline ``gtag(...)`` configuration) with no switch to turn it off. ``strip_trackers`` removes those
scripts; ``external_loads`` then lists everything the page would still load from outside the file:
``<script src>``, ``<link href>``, ``<img src>``/``srcset``, frames, media, ``@import`` and ``url(...)``
in inline styles, ``style`` attributes, ``data:`` stylesheets and the ``data:`` scripts (where the
report's CSS and fonts live), and any tracker string left anywhere. Links a person clicks
(``<a href>``) are not loads and are allowed.

    python -m goldenpath.reporthtml reports/html/index.html

strips the file in place, checks it and exits 0, or exits 1 naming each external load; a report that
fails the check is renamed to ``index.html.rejected`` so that nothing publishes it by mistake.
"""

from __future__ import annotations

import base64
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote_to_bytes

# Hosts and strings of analytics/trackers. A script that names one of them is removed.
TRACKER_HOSTS = ("googletagmanager.com", "google-analytics.com", "analytics.google.com", "doubleclick.net")
TRACKER_MARKERS = (*TRACKER_HOSTS, "gtag(", "dataLayer")

_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>\s*", re.IGNORECASE | re.DOTALL)
_NOSCRIPT = re.compile(r"<noscript\b[^>]*>.*?</noscript\s*>\s*", re.IGNORECASE | re.DOTALL)
_LINK = re.compile(r"<link\b[^>]*>\s*", re.IGNORECASE)
_INLINE_DATA = re.compile(r"^\s*data:", re.IGNORECASE)
# A URL that leaves the file: a scheme (http:, https:, ftp:, ws: …) or protocol-relative //host.
_EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)
_LOCAL_SCHEMES = ("data:", "blob:", "about:", "javascript:", "#")
# CSS loads, wherever CSS text may be (style elements and attributes, stylesheets, CSS inside scripts;
# in scripts only the lower-case `url(` of CSS text, not JavaScript's `new URL(...)`).
_CSS_URL = re.compile(r"""url\(\s*(['"]?)\s*((?:[a-z][a-z0-9+.-]*:|//)[^'")\s]*)""", re.IGNORECASE)
_CSS_URL_IN_SCRIPT = re.compile(r"""url\(\s*(['"]?)\s*((?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)[^'")\s]*)""")
_CSS_IMPORT = re.compile(r"""@import\s+(?:url\(\s*)?(['"]?)\s*([^'");\s]+)""", re.IGNORECASE)
# Attributes that make the browser fetch something, by element ("*": any element).
_LOAD_ATTRS = {
    "script": ("src",), "link": ("href",), "img": ("src", "srcset"), "source": ("src", "srcset"),
    "iframe": ("src",), "frame": ("src",), "embed": ("src",), "object": ("data",), "video": ("src", "poster"),
    "audio": ("src",), "track": ("src",), "input": ("src",), "image": ("href", "xlink:href"),
    "use": ("href", "xlink:href"), "base": ("href",), "*": ("background",),
}


def strip_trackers(html: str) -> tuple[str, list[str]]:
    """Remove every script (and noscript, link) that loads or configures a tracker; say what was removed."""
    removed: list[str] = []

    def drop(match: re.Match[str]) -> str:
        block = match.group(0)
        # Only the tag and a short prefix are inspected for src/href; inline bodies are searched whole,
        # except the report's own bundles (data: URIs), which are checked separately by external_loads.
        head = block[: block.find(">") + 1]
        src = _attr(head, "src") or ""
        looked_at = head.replace(src, "") if _INLINE_DATA.search(src) else block
        if any(marker in looked_at for marker in TRACKER_MARKERS):
            removed.append(_describe(block))
            return ""
        return block

    html = _SCRIPT.sub(drop, html)
    html = _NOSCRIPT.sub(drop, html)
    html = _LINK.sub(drop, html)
    return html, removed


def external_loads(html: str) -> list[str]:
    """Every resource the page would load from outside the file, and every tracker string left in it."""
    parser = _Loads()
    parser.feed(html)
    parser.close()
    problems = list(parser.problems)
    for where, text in parser.inline:
        problems += _css_problems(text, where)
    for marker in TRACKER_MARKERS:
        if marker in html:
            problems.append(f"tracker string {marker!r} in the page")
        for where, text in parser.inline:
            if where.startswith("data:") and marker in text:
                problems.append(f"tracker string {marker!r} in {where}")
    return problems


def process(path: Path) -> tuple[list[str], list[str]]:
    """Strip the report in place and check it: (removed, problems). A failing report is renamed."""
    html = path.read_text(encoding="utf-8")
    html, removed = strip_trackers(html)
    path.write_text(html, encoding="utf-8")
    problems = external_loads(html)
    if problems:
        path.replace(path.with_name(path.name + ".rejected"))
    return removed, problems


def _attr(tag: str, name: str) -> str | None:
    m = re.search(rf"""\s{re.escape(name)}\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", tag, re.IGNORECASE)
    return m.group(1).strip("\"'") if m else None


def _describe(block: str) -> str:
    head = block[: block.find(">") + 1]
    src = _attr(head, "src") or _attr(head, "href")
    if src:
        return f"{head.split()[0].lstrip('<').rstrip('>')} loading {src}"
    first = next((line.strip() for line in block[len(head):].splitlines() if line.strip()), "")
    return f"inline {head.split()[0].lstrip('<').rstrip('>')} ({first[:60]}…)"


def _is_external(url: str) -> bool:
    url = url.strip()
    return bool(_EXTERNAL.match(url)) and not url.lower().startswith(_LOCAL_SCHEMES)


def _css_problems(text: str, where: str) -> list[str]:
    pattern = _CSS_URL_IN_SCRIPT if "script" in where else _CSS_URL
    out = [f"url({m.group(2)}) in {where}" for m in pattern.finditer(text) if _is_external(m.group(2))]
    out += [f"@import {m.group(2)} in {where}" for m in _CSS_IMPORT.finditer(text)
            if not m.group(2).lower().startswith("data:")]
    return out


def _decode_data_uri(uri: str) -> tuple[str, str] | None:
    """(media type, text) of a data: URI, or None when it is not text we can read."""
    head, _, payload = uri.partition(",")
    media = head[5:].split(";")[0].lower() or "text/plain"
    try:
        raw = base64.b64decode(payload) if head.lower().endswith(";base64") else unquote_to_bytes(payload)
    except ValueError:
        return None
    return media, raw.decode("utf-8", "replace")


class _Loads(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.inline: list[tuple[str, str]] = []   # (where, CSS or script text) to search for loads
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)
        if tag in ("style", "script"):
            self._in = tag

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in and data.strip():
            self.inline.append((f"an inline <{self._in}>", data))

    def _check(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v or "" for k, v in attrs}
        for name in (*_LOAD_ATTRS.get(tag, ()), *_LOAD_ATTRS["*"]):
            value = values.get(name)
            if not value:
                continue
            urls = [part.strip().split()[0] for part in value.split(",") if part.strip()] \
                if name == "srcset" else [value]
            for url in urls:
                if _is_external(url):
                    self.problems.append(f"<{tag} {name}={url[:120]!r}>")
                elif url.lower().startswith("data:"):
                    decoded = _decode_data_uri(url)
                    if decoded and (decoded[0] in ("text/css", "text/javascript", "application/javascript")
                                    or decoded[0].endswith("+xml")):
                        self.inline.append((f"data:{decoded[0]} of <{tag} {name}>", decoded[1]))
        if tag == "meta" and values.get("http-equiv", "").lower() == "refresh":
            target = values.get("content", "").partition("url=")[2]
            if _is_external(target):
                self.problems.append(f"<meta http-equiv=refresh> to {target[:120]!r}")
        if values.get("style"):
            self.inline.append((f"the style attribute of <{tag}>", values["style"]))


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m goldenpath.reporthtml path/to/index.html\n"
              "Removes the trackers Allure embeds, then fails if the report still loads anything from outside "
              "the file.", file=sys.stderr)
        return 2
    path = Path(argv[0])
    if not path.is_file():
        print(f"goldenpath report: {path} does not exist: nothing to check (did `allure generate` run?)",
              file=sys.stderr)
        return 1
    removed, problems = process(path)
    for item in removed:
        print(f"goldenpath report: removed tracker: {item}")
    if not removed:
        print("goldenpath report: no tracker found to remove (this Allure version may have dropped it)")
    if problems:
        print(f"goldenpath report: REJECTED: {path} would load from outside the file, so it must not be "
              f"published; renamed to {path.name}.rejected. External loads:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"goldenpath report: checked: {path} loads nothing from outside the file")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
