"""The report's post-processing: the tracker Allure embeds is removed; any other external load fails it."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from goldenpath import reporthtml

# What Allure Report 3.18's awesome template ends with (its Google Analytics block, verbatim in shape).
ALLURE_TAIL = """
    <script   src="data:text/javascript;base64,{js}"></script>
    <script async src="https://www.googletagmanager.com/gtag/js?id=G-LNDJ3J7WT0"></script>
    <script>
        window.dataLayer = window.dataLayer || [];
        function gtag(){{dataLayer.push(arguments);}}
        gtag('js', new Date());
        gtag('config', 'G-LNDJ3J7WT0', {{ "report": "awesome" }});
    </script>
    <script async>window.allureReportData = window.allureReportData || {{}};</script>
</body></html>"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def page(head: str = "", body: str = "", js: str = "console.log('app')") -> str:
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>r</title>{head}</head><body>'
            f'<div id="app"></div>{body}' + ALLURE_TAIL.format(js=b64(js)))


def test_the_allure_tracker_is_removed_and_the_app_kept() -> None:
    html, removed = reporthtml.strip_trackers(page())
    assert len(removed) == 2
    assert "googletagmanager.com/gtag/js" in removed[0] and removed[1].startswith("inline script")
    assert "googletagmanager" not in html and "gtag(" not in html and "dataLayer" not in html
    assert "data:text/javascript;base64," in html and "window.allureReportData" in html
    assert reporthtml.external_loads(html) == []


def test_a_tracker_left_in_place_is_reported() -> None:
    problems = reporthtml.external_loads(page())
    assert any("googletagmanager" in p for p in problems)
    assert any("gtag(" in p for p in problems)


@pytest.mark.parametrize(("head", "body", "js", "expected"), [
    ('<script src="https://cdn.example/app.js"></script>', "", "", "<script src='https://cdn.example/app.js'>"),
    ('<link rel="stylesheet" href="//fonts.example/css">', "", "", "<link href='//fonts.example/css'>"),
    ("<style>@import url(https://fonts.example/x.css);</style>", "", "", "@import https://fonts.example/x.css"),
    ("<style>@font-face{font-family:X;src:url('https://fonts.example/x.woff2')}</style>", "", "",
     "url(https://fonts.example/x.woff2) in an inline <style>"),
    (f'<link rel="stylesheet" href="data:text/css;base64,{b64("a{background:url(http://img.example/a.png)}")}">',
     "", "", "url(http://img.example/a.png) in data:text/css"),
    ("", "", 'const css = "@font-face{src:url(https://fonts.example/y.woff)}";',
     "url(https://fonts.example/y.woff) in data:text/javascript"),
    ("", '<img srcset="a.png 1x, https://img.example/b.png 2x">', "", "<img srcset='https://img.example/b.png'>"),
    ("", '<div style="background-image: URL(https://img.example/c.png)"></div>', "",
     "url(https://img.example/c.png) in the style attribute of <div>"),
    ("", '<iframe src="https://track.example/"></iframe>', "", "<iframe src='https://track.example/'>"),
    ('<base href="https://elsewhere.example/">', "", "", "<base href='https://elsewhere.example/'>"),
    ('<link rel="preconnect" href="https://cdn.example">', "", "", "<link href='https://cdn.example'>"),
])
def test_external_loads_fail_the_check(head: str, body: str, js: str, expected: str) -> None:
    html, _ = reporthtml.strip_trackers(page(head, body, js or "console.log(1)"))
    problems = reporthtml.external_loads(html)
    assert any(expected in p for p in problems), problems


def test_links_and_local_resources_are_allowed() -> None:
    html, _ = reporthtml.strip_trackers(page(
        '<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns=\'http://www.w3.org/2000/svg\'/%3E">'
        "<style>.a{background:url(data:image/png;base64,AAAA)}</style>",
        '<a href="https://allurereport.org">Powered by</a><img src="blob:null/1"><img src="x.png">',
        'const u = new URL("https://localhost"); const ns = "http://www.w3.org/2000/svg";'))
    assert reporthtml.external_loads(html) == []


def test_process_rewrites_in_place_and_rejects_a_failing_report(tmp_path: Path) -> None:
    good = tmp_path / "good" / "index.html"
    good.parent.mkdir()
    good.write_text(page())
    removed, problems = reporthtml.process(good)
    assert len(removed) == 2 and problems == []
    assert "googletagmanager" not in good.read_text()

    bad = tmp_path / "bad" / "index.html"
    bad.parent.mkdir()
    bad.write_text(page('<script src="https://cdn.example/x.js"></script>'))
    assert reporthtml.main([str(bad)]) == 1
    assert not bad.exists() and (bad.parent / "index.html.rejected").exists()


def test_main_usage_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert reporthtml.main([]) == 2
    assert reporthtml.main([str(tmp_path / "none.html")]) == 1
    assert "does not exist" in capsys.readouterr().err
