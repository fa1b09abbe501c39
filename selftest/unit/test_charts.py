"""The report's SVG charts: valid XML, one bar per bin or leg, the marks and threshold where they belong."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from goldenpath.report import charts
from goldenpath.observations import Burst, GoldenPathResult, Sample

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg.encode("utf-8"))  # raises on anything that is not well-formed XML
    assert root.tag == f"{SVG}svg"
    return root


def by_class(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}{tag}") if cls in (e.get("class") or "").split()]


def attr(e: ET.Element, name: str) -> str:
    value = e.get(name)
    assert value is not None, f"<{e.tag}> has no {name}"
    return value


def title(e: ET.Element) -> str:
    node = e.find(f"{SVG}title")
    assert node is not None and node.text is not None, f"<{e.tag}> has no <title>"
    return node.text


def text(root: ET.Element) -> str:
    return " ".join(t.text or "" for t in root.iter(f"{SVG}text"))


def test_histogram_bins_marks_and_threshold() -> None:
    # the axis ends at 5 s (3.2 s plus headroom, rounded), so 10 bins of 0.5 s: 0.1 and 0.2 s share bin 0
    root = parse(charts.histogram([0.1, 0.2, 0.7, 2.6, 3.2], 2.0, bins=10))
    bars = by_class(root, "rect", "bar")
    assert len(bars) == 4                       # bins 0 (2), 1 (1), 5 (1), 6 (1)
    assert sorted(float(attr(b, "height")) for b in bars)[-1] > float(attr(bars[1], "height"))
    marks = {attr(e, "class").split()[1] for e in by_class(root, "line", "mark")}
    assert marks == {"p50", "p95", "max"}
    assert len(by_class(root, "line", "threshold")) == 1
    words = text(root)
    assert "p50 0.70 s" in words and "p95 3.20 s" in words and "max 3.20 s" in words
    assert "threshold 2 s" in words


def test_threshold_line_sits_at_the_threshold() -> None:
    root = parse(charts.histogram([1.0, 3.0], 2.0, bins=4, marks={}))
    axis_end = charts.WIDTH - charts.RIGHT
    (line,) = by_class(root, "line", "threshold")
    # axis 0..top; the threshold's x is proportional to 2 / top
    top = charts._nice(3.0 * 1.08)
    expected = charts.LEFT + (axis_end - charts.LEFT) * 2.0 / top
    assert math.isclose(float(attr(line, "x1")), expected, abs_tol=0.1)


def test_burst_uses_the_bursts_own_percentiles_and_colours_non_200() -> None:
    samples = tuple(Sample(503 if i % 3 == 0 else 200, 2.2 + i * 0.05, None) for i in range(20))
    burst = Burst("https://api.example/health", 0.0, samples + (Sample(None, 3.5, "timeout"),))
    root = parse(charts.burst_histogram(burst, 2.0))
    words = text(root)
    assert f"p95 {burst.percentile(0.95):.2f} s" in words and f"max {burst.max_seconds:.2f} s" in words
    assert "8 of 21 answers other than 200" in words
    bad = by_class(root, "rect", "bad")
    counts = sum(int(title(b).split(": ")[1].split()[0]) for b in bad)
    assert counts == 8
    assert "https://api.example/health" in words


def test_no_samples_still_draws_a_chart() -> None:
    root = parse(charts.histogram([], 2.0))
    assert by_class(root, "rect", "bar") == []
    assert "no requests" in text(root)


def test_text_is_escaped() -> None:
    root = parse(charts.histogram([0.5], 1.0, title='<a & "b">'))
    assert '<a & "b">' in text(root)


def test_golden_path_one_bar_per_leg() -> None:
    journey = GoldenPathResult(ok=True, failed_leg=None, cause=None,
                               legs={"login": 0.19, "websocket_open": 0.21, "first_event": 0.25,
                                     "final_response": 0.40}, events=("agent_started", "agent_completed"))
    root = parse(charts.golden_path_legs(journey, deadline=1.0))
    bars = by_class(root, "rect", "bar")
    assert len(bars) == 4
    assert [title(b).split(":")[0] for b in bars] == list(journey.legs)
    # each leg starts where the previous one ended
    xs = [(float(attr(b, "x")), float(attr(b, "x")) + float(attr(b, "width"))) for b in bars]
    assert all(math.isclose(xs[i][1], xs[i + 1][0], abs_tol=0.2) for i in range(3))
    assert "+0.15 s (at 0.40 s)" in text(root) and "deadline 1 s" in text(root)
    assert by_class(root, "rect", "failed") == []


@pytest.mark.parametrize(("legs", "failed", "bars", "marker"), [
    ({"login": 0.147}, "login", 1, 0),                      # the leg that failed has a time: a red bar
    ({"login": 0.19, "websocket_open": 0.21}, "response", 2, 1),  # it broke after the last timed leg
    ({}, "login", 0, 1),                                    # nothing timed at all
])
def test_golden_path_marks_where_it_breaks(legs: dict[str, float], failed: str, bars: int, marker: int) -> None:
    journey = GoldenPathResult(ok=False, failed_leg=failed, cause="answered 403: demo mode", legs=legs, events=())
    root = parse(charts.golden_path_legs(journey))
    assert len(by_class(root, "rect", "bar")) == bars
    assert len(by_class(root, "rect", "breaks")) == marker
    assert len(by_class(root, "rect", "failed")) == (1 if failed in legs else 0)
    assert f"breaks at {failed}: answered 403: demo mode" in text(root)


def test_charts_are_self_contained() -> None:
    journey = GoldenPathResult(ok=True, failed_leg=None, cause=None, legs={"login": 0.1}, events=())
    for svg in (charts.histogram([0.1, 0.2], 2.0), charts.golden_path_legs(journey)):
        assert "<script" not in svg and "href" not in svg and "@import" not in svg and "url(" not in svg
