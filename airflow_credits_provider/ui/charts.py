"""Charts as inline SVG, drawn on the server: no script, no build, colours from the page's CSS.

Every shape carries a class (``line``, ``band``, ``projection``, ``refill``, ``renewal``, ``axis``) that
the page's stylesheet colours for light and dark mode, and a ``<title>`` for screen readers and
tooltips.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING

from airflow_credits_provider.parsing import format_amount

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date

    from airflow_credits_provider.ui.queries import DailyBalance


def sparkline(values: Sequence[Decimal], width: int = 120, height: int = 28) -> str:
    """A small line of ``values`` (oldest first); empty text when there are fewer than two."""
    if len(values) < 2:
        return ""
    top, bottom = max(values), min(values)
    span = (top - bottom) or Decimal(1)
    step = (width - 4) / (len(values) - 1)
    points = " ".join(
        f"{2 + i * step:.1f},{2 + (height - 4) * float((top - v) / span):.1f}" for i, v in enumerate(values)
    )
    label = f"{len(values)} days: {format_amount(values[0])} to {format_amount(values[-1])}"
    return (
        f'<svg class="spark" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        f"<title>{escape(label)}</title>"
        f'<polyline class="line" fill="none" points="{points}"/></svg>'
    )


@dataclass(frozen=True)
class Projection:
    """The runway drawn past the last snapshot: from ``start`` at ``balance`` to ``end`` at ``target``."""

    start: datetime
    balance: Decimal
    end: datetime
    target: Decimal


def history_chart(
    days: Sequence[DailyBalance],
    *,
    projection: Projection | None = None,
    renewal: datetime | None = None,
    live: tuple[datetime, Decimal] | None = None,
    horizon_days: int = 60,
    width: int = 760,
    height: int = 260,
) -> str:
    """The balance per day as an SVG chart; empty text without days.

    Draws each day's last balance (a line) over its low-high band, marks refills, projects the runway
    to ``projection.end`` (at most ``horizon_days`` past the last day) and the renewal as a vertical line.
    ``live`` (when the history is behind the live balance) is drawn as its own point, joined to the last
    day by a dotted line: the history does not know what happened between them.
    """
    if not days:
        return ""
    left, right, top_pad, bottom_pad = 64, 16, 16, 28
    first = _at(days[0].day)
    last = _at(days[-1].day)
    limit = last + timedelta(days=horizon_days)
    end = last + timedelta(days=1)
    if live is not None:
        end = max(end, min(live[0] + timedelta(hours=12), limit))
    if projection is not None:
        end = max(end, min(projection.end, limit))
    if renewal is not None and renewal <= limit:
        end = max(end, renewal + timedelta(hours=12))
    ceiling = max(
        max(d.high for d in days),
        projection.balance if projection else Decimal(0),
        live[1] if live else Decimal(0),
    ) or Decimal(1)
    total = (end - first).total_seconds() or 1.0
    plot_w, plot_h = width - left - right, height - top_pad - bottom_pad

    def x(moment: datetime) -> float:
        return left + plot_w * (moment - first).total_seconds() / total

    def y(value: Decimal) -> float:
        return top_pad + plot_h * (1 - float(max(value, Decimal(0)) / ceiling))

    def mid(day: date) -> datetime:
        return _at(day) + timedelta(hours=12)

    base = y(Decimal(0))
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet"><title>Balance per day</title>',
        f'<line class="axis" x1="{left}" y1="{base:.1f}" x2="{width - right}" y2="{base:.1f}"/>',
        f'<text class="label" x="{left - 6}" y="{top_pad + 4}" text-anchor="end">'
        f"{escape(format_amount(ceiling))}</text>",
        f'<text class="label" x="{left - 6}" y="{base + 4:.1f}" text-anchor="end">0</text>',
        f'<text class="label" x="{left}" y="{height - 8}">{days[0].day.isoformat()}</text>',
        f'<text class="label" x="{width - right}" y="{height - 8}" text-anchor="end">'
        f"{(end - timedelta(seconds=1)).date().isoformat()}</text>",
    ]
    band = [f"{x(mid(d.day)):.1f},{y(d.high):.1f}" for d in days] + [
        f"{x(mid(d.day)):.1f},{y(d.low):.1f}" for d in reversed(days)
    ]
    parts.append(f'<polygon class="band" points="{" ".join(band)}"/>')
    line = " ".join(f"{x(mid(d.day)):.1f},{y(d.last):.1f}" for d in days)
    parts.append(f'<polyline class="line" fill="none" points="{line}"/>')
    for d in days:
        label = f"{d.day.isoformat()}: {format_amount(d.last)} at the day's end ({d.snapshots} snapshots)"
        parts.append(
            f'<circle class="point" cx="{x(mid(d.day)):.1f}" cy="{y(d.last):.1f}" r="2.5">'
            f"<title>{escape(label)}</title></circle>"
        )
        if d.refills:
            cx, cy = x(mid(d.day)), y(d.high)
            label = f"{d.day.isoformat()}: refilled +{format_amount(d.refilled)} (reset or top-up)"
            parts.append(
                f'<path class="refill" d="M{cx:.1f},{cy - 11:.1f} l-5,8 h10 z">'
                f"<title>{escape(label)}</title></path>"
            )
    if live is not None and live[0] <= end:
        lx, ly = x(live[0]), y(live[1])
        label = f"live balance {format_amount(live[1])} at {live[0]:%Y-%m-%d %H:%M} UTC (not in the history)"
        parts.append(
            f'<line class="gap" x1="{x(mid(days[-1].day)):.1f}" y1="{y(days[-1].last):.1f}" '
            f'x2="{lx:.1f}" y2="{ly:.1f}"/>'
            f'<circle class="live" cx="{lx:.1f}" cy="{ly:.1f}" r="4"><title>{escape(label)}</title></circle>'
            f"{_label(lx, ly - 8, 'live', width - right)}"
        )
    if projection is not None:
        stop = min(projection.end, end)
        fraction = 1.0
        if projection.end > projection.start:
            fraction = (stop - projection.start) / (projection.end - projection.start)
        drop = (projection.balance - projection.target) * Decimal(str(round(fraction, 6)))
        value = projection.balance - drop
        label = f"runway: {format_amount(projection.target)} on {projection.end:%Y-%m-%d}" + (
            "" if stop == projection.end else " (beyond the chart)"
        )
        parts.append(
            f'<line class="projection" x1="{x(projection.start):.1f}" y1="{y(projection.balance):.1f}" '
            f'x2="{x(stop):.1f}" y2="{y(value):.1f}"><title>{escape(label)}</title></line>'
        )
        if projection.target > 0:
            parts.append(
                f'<line class="reserve" x1="{left}" y1="{y(projection.target):.1f}" x2="{width - right}" '
                f'y2="{y(projection.target):.1f}"><title>reserve '
                f"{escape(format_amount(projection.target))}</title></line>"
            )
    if renewal is not None and first <= renewal <= end:
        rx = x(renewal)
        parts.append(
            f'<line class="renewal" x1="{rx:.1f}" y1="{top_pad}" x2="{rx:.1f}" y2="{y(Decimal(0)):.1f}">'
            f"<title>renews {renewal:%Y-%m-%d %H:%M} UTC</title></line>"
            f"{_label(rx, top_pad + 10, f'renews {renewal:%Y-%m-%d}', width - right)}"
        )
    parts.append("</svg>")
    return "".join(parts)


#: Width of one character of the 11 px labels, generously (system-ui digits are about 6.2 px).
_CHAR_WIDTH = 7


def _label(at_x: float, at_y: float, text: str, right_edge: float) -> str:
    """A label beside ``at_x``: to its right, or to its left where it would cross ``right_edge``."""
    if at_x + 4 + len(text) * _CHAR_WIDTH <= right_edge:
        return f'<text class="label" x="{at_x + 4:.1f}" y="{at_y:.1f}">{escape(text)}</text>'
    return f'<text class="label" x="{at_x - 4:.1f}" y="{at_y:.1f}" text-anchor="end">{escape(text)}</text>'


def _at(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)
