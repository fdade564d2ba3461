"""
Snapshot every vendor's balance hourly and check its runway: know days ahead when credits run out.

Each hour, ``snapshot_<vendor>`` lands the balance into ``credit_balance_snapshots`` (any common-sql
warehouse; ``make demo`` uses an embedded SQLite file), then ``runway_<vendor>`` forecasts from the last
14 days of snapshots when the account reaches zero: resets and top-ups are not counted as negative
spend. Under ``min_days`` it logs a warning and calls ``alert`` (swap in Slack, PagerDuty, ...); use
``on_short="fail"`` to make the DAG run fail instead. The numbers are in each runway task's XCom.

Connections: ``leadmagic_default``, ``localleads_default``, ``truemail_default``, ``credits_warehouse``.
``airflow-credits sandbox`` prints all of them for the offline sandbox (as ``airflow connections add``
commands and as environment variables).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_credits_provider.operators.runway import CreditRunwayOperator
from airflow_credits_provider.transfers.credit_balance_to_sql import CreditBalanceToSqlOperator

WAREHOUSE = "credits_warehouse"
MIN_DAYS = 7


def alert(runway: object, context: dict) -> None:
    """Called when an account's runway is shorter than MIN_DAYS: replace with your alerting."""
    print(f"ALERT {context['ti'].task_id}: {runway.describe()}")  # type: ignore[attr-defined]


with DAG(
    "example_credit_runway",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["credits", "example"],
    doc_md=__doc__,
) as dag:
    for vendor in ("leadmagic", "localleads", "truemail"):
        CreditBalanceToSqlOperator(
            task_id=f"snapshot_{vendor}", credit_conn_id=f"{vendor}_default", sql_conn_id=WAREHOUSE, retries=2
        ) >> CreditRunwayOperator(
            task_id=f"runway_{vendor}",
            sql_conn_id=WAREHOUSE,
            account=f"{vendor}_default",
            min_days=MIN_DAYS,
            on_short="warn",
            on_short_callback=alert,
        )
