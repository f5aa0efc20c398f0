"""The pool page's SVG price curve (marketplace/pools/chart.py): pure, integer geometry."""

import re
from datetime import UTC, datetime
from xml.etree import ElementTree

from marketplace.pools import chart, engine
from marketplace.pools.chart import LEFT, PLOT_HEIGHT, PLOT_WIDTH, TOP, Step

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2027, 1, 1, tzinfo=UTC)

# DESIGN.md's bids X and Y: X (50 -> 9.00), (100 -> 8.00), (150 -> 7.00) cap 500; Y (100 -> 7.50) cap 200.
X = engine.Bid(1, (engine.Tier(50, 900), engine.Tier(100, 800), engine.Tier(150, 700)), 500, T0)
Y = engine.Bid(2, (engine.Tier(100, 750),), 200, T0)


def _parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)


def test_steps_follow_the_best_price_of_the_worked_example():
    assert chart.steps_from_bids([X, Y]) == [Step(50, 99, 900), Step(100, 149, 750), Step(150, 500, 700)]
    # The engine's curve points are exactly the steps' starts when there is no gap.
    assert [(s.start, s.price) for s in chart.steps_from_bids([X, Y])] == engine.price_curve([X, Y])


def test_steps_keep_a_gap_where_no_bid_serves():
    small = engine.Bid(1, (engine.Tier(10, 500),), 20, T0)
    large = engine.Bid(2, (engine.Tier(50, 400),), 100, T0)
    assert chart.steps_from_bids([small, large]) == [Step(10, 20, 500), Step(50, 100, 400)]
    assert chart.steps_from_bids([]) == []


def test_nice_axis_ticks():
    assert chart.axis_ticks(500) == [0, 100, 200, 300, 400, 500]
    assert chart.axis_ticks(900) == [0, 200, 400, 600, 800, 1000]
    assert chart.axis_ticks(7) == [0, 2, 4, 6, 8]
    assert chart.axis_ticks(1) == [0, 1]
    assert chart.axis_ticks(0) == [0, 1]
    assert chart.nice_step(120_000) == 50_000


def test_coordinates_are_integers_rounded_half_up():
    steps = [Step(50, 99, 900), Step(100, 149, 750), Step(150, 500, 700)]
    frame = chart.frame_for(steps, current_volume=170, min_volume=100)
    assert frame.x_ticks == (0, 100, 200, 300, 400, 500)
    assert frame.y_ticks == (0, 200, 400, 600, 800, 1000)
    # x = LEFT + round(v * PLOT_WIDTH / 500); y = TOP + PLOT_HEIGHT - round(p * PLOT_HEIGHT / 1000)
    assert frame.x(0) == LEFT and frame.x(500) == LEFT + PLOT_WIDTH
    assert frame.x(50) == LEFT + (50 * PLOT_WIDTH * 2 + 500) // 1000
    assert frame.y(0) == TOP + PLOT_HEIGHT and frame.y(1000) == TOP
    assert frame.y(750) == TOP + PLOT_HEIGHT - (750 * PLOT_HEIGHT * 2 + 1000) // 2000
    # Exact half rounds up: 1 unit of 2 over 5 pixels is 2.5 -> 3.
    assert chart._scaled(1, 2, 5) == 3
    assert chart._scaled(1, 4, 5) == 1


def test_step_path_draws_steps_and_breaks_at_gaps():
    frame = chart.Frame((0, 50, 100), (0, 250, 500))
    touching = [Step(10, 19, 500), Step(20, 100, 400)]
    assert chart.step_path(touching, frame) == (
        f"M{frame.x(10)} {frame.y(500)} H{frame.x(20)} V{frame.y(400)} H{frame.x(100)}"
    )
    gap = [Step(10, 20, 500), Step(50, 100, 400)]
    assert chart.step_path(gap, frame) == (
        f"M{frame.x(10)} {frame.y(500)} H{frame.x(20)} M{frame.x(50)} {frame.y(400)} H{frame.x(100)}"
    )


def test_svg_has_title_desc_axes_labels_points_and_markers():
    steps = [Step(50, 99, 900), Step(100, 149, 750), Step(150, 500, 700)]
    svg = chart.render_svg(steps, current_volume=170, min_volume=100, currency="EUR", unit="panel", chart_id="c1")
    root = _parse(svg)  # well-formed XML
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c1-title c1-desc"
    assert root.find(f"{SVG}title").text == "Best unit price by pooled volume"
    desc = root.find(f"{SVG}desc").text
    assert "from 50 to 99 units: 9.00 EUR" in desc
    assert "from 150 to 500 units: 7.00 EUR" in desc
    assert "Pooled now: 170 units, best price 7.00 EUR" in desc
    assert "Pool minimum: 100 units" in desc
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "Pooled volume (panel)" in texts and "Best unit price (EUR)" in texts
    assert ["0", "100", "200", "300", "400", "500"] == [
        t for t in texts if t in {"0", "100", "200", "300", "400", "500"}
    ]
    assert {"0.00", "2.00", "4.00", "6.00", "8.00", "10.00"} <= set(texts)
    assert "minimum 100" in texts and "now 170" in texts
    frame = chart.frame_for(steps, 170, 100)
    points = [
        (c.get("data-volume"), c.get("data-price"), c.get("cx"), c.get("cy"))
        for c in root.iter(f"{SVG}circle")
        if c.get("data-volume")
    ]
    assert points == [(str(s.start), str(s.price), str(frame.x(s.start)), str(frame.y(s.price))) for s in steps]
    path = next(root.iter(f"{SVG}path")).get("d")
    assert path == chart.step_path(steps, frame)
    current = root.find(f".//{SVG}circle[@class='chart-current-dot']")
    assert (current.get("cx"), current.get("cy")) == (str(frame.x(170)), str(frame.y(700)))
    # No float anywhere in the geometry: every number in the markup is an integer.
    assert not re.search(r'="[^"]*\d\.\d[^"]*"', svg)


def test_empty_curve_still_draws_axes_minimum_and_current_volume():
    svg = chart.render_svg([], current_volume=30, min_volume=100, currency="EUR", unit="kg")
    root = _parse(svg)
    assert root.find(f"{SVG}title").text == "Best unit price by pooled volume"
    desc = root.find(f"{SVG}desc").text
    assert desc.startswith("No supplier has bid yet")
    assert "no bid serves this volume" in desc
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "No supplier has bid yet" in texts
    assert "Pooled volume (kg)" in texts and "minimum 100" in texts and "now 30" in texts
    assert list(root.iter(f"{SVG}path")) == []
    assert not [c for c in root.iter(f"{SVG}circle")]


def test_text_is_escaped():
    svg = chart.render_svg(
        [Step(1, 5, 100)], current_volume=0, min_volume=1, currency="EUR", unit='<b>"box"</b>', chart_id='x"y'
    )
    assert "<b>" not in svg
    root = _parse(svg)
    assert 'Pooled volume (<b>"box"</b>)' in [t.text for t in root.iter(f"{SVG}text")]


def test_price_at():
    steps = [Step(10, 20, 500), Step(50, 100, 400)]
    assert [chart.price_at(steps, v) for v in (9, 10, 20, 21, 50, 100, 101)] == [None, 500, 500, None, 400, 400, None]
