"""The server-drawn SVG charts: what each shape encodes, parsed back from the markup."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from airflow_credits_provider.ui.charts import Projection, history_chart, sparkline
from airflow_credits_provider.ui.queries import DailyBalance

SVG = "{http://www.w3.org/2000/svg}"


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(markup.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def _day(n: int, last: int, *, refills: int = 0) -> DailyBalance:
    return DailyBalance(
        date(2026, 11, 1) + timedelta(days=n),
        Decimal(last),
        low=Decimal(last - 5),
        high=Decimal(last + 5),
        snapshots=24,
        spent=Decimal(10),
        refilled=Decimal(500 * refills),
        refills=refills,
    )


def test_sparkline_puts_the_highest_value_on_top() -> None:
    assert sparkline([]) == ""
    assert sparkline([Decimal(3)]) == ""
    svg = _parse(sparkline([Decimal(10), Decimal(30), Decimal(20)], width=120, height=28))
    points = [tuple(map(float, p.split(","))) for p in svg.find(f"{SVG}polyline").get("points").split()]
    assert len(points) == 3
    assert [p[0] for p in points] == sorted(p[0] for p in points)
    assert points[1][1] == 2.0  # the highest value at the top edge
    assert points[0][1] == 26.0  # the lowest at the bottom edge
    assert "10 to 20" in svg.find(f"{SVG}title").text


def test_history_chart_marks_days_refills_runway_and_renewal() -> None:
    days = [_day(i, 1000 - 20 * i, refills=1 if i == 3 else 0) for i in range(10)]
    last = datetime(2026, 11, 10, 12, tzinfo=timezone.utc)
    renewal = datetime(2026, 11, 20, tzinfo=timezone.utc)
    markup = history_chart(
        days,
        projection=Projection(last, Decimal(820), last + timedelta(days=41), Decimal(0)),
        renewal=renewal,
        horizon_days=30,
    )
    svg = _parse(markup)
    assert len(svg.findall(f"{SVG}circle")) == 10
    [refill] = svg.findall(f"{SVG}path")
    assert "2026-11-04: refilled +500" in refill.find(f"{SVG}title").text
    [projection] = [e for e in svg.findall(f"{SVG}line") if e.get("class") == "projection"]
    assert "(beyond the chart)" in projection.find(f"{SVG}title").text  # 41 days out, 30 shown
    assert float(projection.get("y2")) < float(projection.get("y1")) + 200  # stops above zero
    [renewal_line] = [e for e in svg.findall(f"{SVG}line") if e.get("class") == "renewal"]
    assert "renews 2026-11-20" in renewal_line.find(f"{SVG}title").text
    assert float(projection.get("x1")) < float(renewal_line.get("x1")) < float(projection.get("x2"))


def test_history_chart_draws_the_reserve_and_nothing_without_days() -> None:
    assert history_chart([]) == ""
    last = datetime(2026, 11, 2, 12, tzinfo=timezone.utc)
    svg = _parse(
        history_chart(
            [_day(0, 500), _day(1, 400)],
            projection=Projection(last, Decimal(400), last + timedelta(days=3), Decimal(100)),
        )
    )
    classes = [e.get("class") for e in svg.iter()]
    assert classes.count("reserve") == 1
    assert "renewal" not in classes
