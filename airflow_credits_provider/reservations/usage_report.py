"""A budget's spend per period and per DAG, from ``credit_usage`` (``budgets usage``, the Credits pages)."""

from __future__ import annotations

from contextlib import closing
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.budgets import period_bounds, to_utc_naive
from airflow_credits_provider.parsing import decimal_text, exact_arithmetic
from airflow_credits_provider.reservations.models import read_ts
from airflow_credits_provider.reservations.usage import BUDGET_CHARGE

if TYPE_CHECKING:
    from datetime import datetime

    from airflow_credits_provider.reservations.store import ReservationStore


def budget_usage(store: ReservationStore, name: str, periods: int = 3) -> dict[str, Any]:
    """``{"budget": state now, "periods": [newest first], "dags": [this period, largest first]}``.

    Each period holds ``spent`` (what its reservations were charged: their measured spend, or all they
    reserved when unmeasured), ``runs`` and ``unmeasured`` (charged in full). Active reservations are in
    the budget's state (``held``), not in a period's spend.
    """
    state = store.budget_state(name)
    spec = state.budget
    bounds: list[tuple[datetime, datetime]] = [(state.period_start, state.period_end)]
    while len(bounds) < periods:
        start = bounds[-1][0]
        bounds.append(period_bounds(spec.period, spec.timezone, start - timedelta(microseconds=1)))
    usage = store.usage
    e, p = usage._escape, usage.param()
    charge = BUDGET_CHARGE.format(outcome=e("outcome"), spent=e("spent"), reserved=e("reserved"))
    sql = (
        f"SELECT {e('reserved_at')}, {e('dag_id')}, {charge}, {e('spent')} FROM {usage.qualified} "
        f"WHERE {e('budget')} = {p} AND {e('reserved_at')} >= {p} AND {e('reserved_at')} < {p}"
    )
    params = usage.adapt((name, to_utc_naive(bounds[-1][0]), to_utc_naive(bounds[0][1])))
    with closing(store.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    totals: list[dict[str, Any]] = [{"spent": Decimal(0), "runs": 0, "unmeasured": 0} for _ in bounds]
    dags: dict[str, dict[str, Any]] = {}
    current = (to_utc_naive(bounds[0][0]), to_utc_naive(bounds[0][1]))
    with exact_arithmetic():
        for reserved_at, dag_id, charged, spent in rows:
            at = read_ts(reserved_at)
            amount = Decimal(str(charged))
            for i, (start, end) in enumerate(bounds):
                if at is not None and to_utc_naive(start) <= at < to_utc_naive(end):
                    totals[i]["spent"] += amount
                    totals[i]["runs"] += 1
                    totals[i]["unmeasured"] += spent is None
            if at is not None and current[0] <= at < current[1]:
                dag = dags.setdefault(str(dag_id), {"dag_id": str(dag_id), "spent": Decimal(0), "runs": 0})
                dag["spent"] += amount
                dag["runs"] += 1
    return {
        "budget": state.to_dict(),
        "periods": [
            {
                "period_start": start.isoformat(),
                "period_end": end.isoformat(),
                "spent": decimal_text(t["spent"]),
                "runs": t["runs"],
                "unmeasured": t["unmeasured"],
            }
            for (start, end), t in zip(bounds, totals, strict=True)
        ],
        "dags": [
            {**d, "spent": decimal_text(d["spent"])}
            for d in sorted(dags.values(), key=lambda d: (-d["spent"], d["dag_id"]))
        ],
    }
