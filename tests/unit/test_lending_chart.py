"""The portfolio page's cash-flow bar chart (marketplace/lending/chart.py): pure, integer geometry."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from marketplace.lending import chart
from marketplace.lending.chart import HEIGHT, LEFT, PLOT_HEIGHT, PLOT_WIDTH, TOP, WIDTH

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def _clean_database():
    """Pure module: no app, no database."""
    yield


def months(*values):
    """``(out, principal, interest)`` per month from 2026-11 on."""
    rows = []
    year, month = 2026, 11
    for out, principal, interest in values:
        rows.append({"month": f"{year:04d}-{month:02d}", "out": out, "principal": principal, "interest": interest})
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return rows


def bars(svg: str) -> list[ElementTree.Element]:
    return ElementTree.fromstring(svg).findall(f"{SVG}g[@class='chart-bars']/{SVG}rect")


def test_svg_is_one_accessible_image():
    svg = chart.render_svg(months((30_000, 0, 0), (0, 2_400, 200), (0, 2_500, 150)), currency="EUR", chart_id="flows")
    root = ElementTree.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img" and root.get("aria-labelledby") == "flows-title flows-desc"
    assert root.get("viewBox") == f"0 0 {WIDTH} {HEIGHT}"
    assert root.find(f"{SVG}title").text == chart.TITLE
    desc = root.find(f"{SVG}desc").text
    assert desc.startswith("From November 2026 to January 2027: lent out 300.00 EUR, principal back 49.00 EUR,")
    assert "interest back 3.50 EUR" in desc and "Money moved in 3 of 3 months." in desc
    assert "Most received in January 2027: 26.50 EUR." in desc
    legend = [t.text for t in root.findall(f"{SVG}g[@class='chart-legend']/{SVG}text")]
    assert legend == ["Lent out", "Principal back", "Interest back"]


def test_bars_are_integer_geometry_scaled_to_the_top_tick():
    svg = chart.render_svg(months((100_000, 0, 0), (0, 50_000, 25_000)), currency="EUR")
    rects = bars(svg)
    assert [r.get("class") for r in rects] == ["bar bar-out", "bar bar-principal", "bar bar-interest"]
    bottom = TOP + PLOT_HEIGHT
    heights = [int(r.get("height")) for r in rects]
    assert heights == [PLOT_HEIGHT, PLOT_HEIGHT // 2, PLOT_HEIGHT // 4]  # top tick is exactly 1,000.00
    for rect in rects:
        assert int(rect.get("y")) + int(rect.get("height")) == bottom
        assert LEFT <= int(rect.get("x")) and int(rect.get("x")) + int(rect.get("width")) <= LEFT + PLOT_WIDTH
        for name in ("x", "y", "width", "height"):
            assert rect.get(name).isdigit()
    assert [r.get("data-amount") for r in rects] == ["100000", "50000", "25000"]
    tips = [r.find(f"{SVG}title").text for r in rects]
    assert tips == [
        "November 2026, lent out: 1,000.00 EUR",
        "December 2026, principal back: 500.00 EUR",
        "December 2026, interest back: 250.00 EUR",
    ]
    ticks = [t.text for t in ElementTree.fromstring(svg).findall(f"{SVG}g[@class='chart-y-ticks']/{SVG}text")]
    assert ticks == ["0.00", "200.00", "400.00", "600.00", "800.00", "1,000.00"]


def test_twelve_months_fit_and_label_the_years():
    rows = months(*[(1_000 * (k + 1), 100 * k, 10 * k) for k in range(12)])
    svg = chart.render_svg(rows, currency="GBP")
    rects = bars(svg)
    assert len(rects) == 12 + 11 + 11  # zero values draw no bar
    xs = [int(r.get("x")) for r in rects if r.get("class") == "bar bar-out"]
    assert xs == sorted(xs) and len(set(xs)) == 12
    labels = [t.text for t in ElementTree.fromstring(svg).findall(f"{SVG}g[@class='chart-x-ticks']/{SVG}text")]
    assert labels[:3] == ["Nov", "2026", "Dec"] and "2027" in labels and labels.count("Jan") == 1
    assert "Amount (GBP)" in svg


def test_tiny_amounts_still_show_a_bar_and_nothing_is_negative():
    svg = chart.render_svg(months((1_000_000, 1, 0), (-5, 0, 0)), currency="EUR")
    heights = {r.get("class"): int(r.get("height")) for r in bars(svg)}
    assert heights == {"bar bar-out": PLOT_HEIGHT, "bar bar-principal": 1}


def test_empty_chart_says_so():
    svg = chart.render_svg(months((0, 0, 0), (0, 0, 0)), currency="EUR")
    assert bars(svg) == []
    assert "No money lent out or received yet" in svg
    assert "no money was lent out or received back" in ElementTree.fromstring(svg).find(f"{SVG}desc").text
    nothing = chart.render_svg([], currency="EUR")
    assert ElementTree.fromstring(nothing).find(f"{SVG}desc").text == "No months to show."


def test_text_is_escaped():
    svg = chart.render_svg(months((100, 0, 0)), currency="<b>&", chart_id='x" onload="y')
    ElementTree.fromstring(svg)  # still well-formed
    assert "<b>" not in svg and "&lt;b&gt;&amp;" in svg and 'onload="y' not in svg


def test_no_float_in_the_output():
    svg = chart.render_svg(months((33_333, 11_111, 7), (1, 2, 3), (99_999, 0, 12_345)), currency="EUR")
    for rect in bars(svg):
        for name in ("x", "y", "width", "height"):
            assert "." not in rect.get(name)
