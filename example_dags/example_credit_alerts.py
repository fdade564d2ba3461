"""
Warn before the wall: check the credit alert rules every 15 minutes and send what is due, once.

The rules live in the reservation database, loaded from ``team_alerts.yaml`` next to this file with
``airflow-credits alerts import <this folder>/team_alerts.yaml --conn-id credits_reservations`` (after
``team_budgets.yaml``: its budget rules watch those budgets). A reservation or a release that crosses a
budget or balance threshold sends its alert itself, right after its transaction; this DAG finds the
rest: budget forecasts, runways and plan credits about to expire unused (from the balance snapshots
``example_credit_history`` lands), crossings caused outside Airflow, and any alert whose notifier was
down (sent once it is back). A rerun, or two checkers at once, send nothing twice.

Connections: ``credits_reservations``, ``credits_warehouse``, ``credits_smtp`` (Airflow's SMTP
connection the rules name), ``leadmagic_default``, ``localleads_default``.
``airflow-credits sandbox`` prints all of them for the offline sandbox (its SMTP inbox included).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_credits_provider.operators.alerts import CreditAlertsOperator

with DAG(
    "example_credit_alerts",
    schedule="*/15 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # a second checker would send nothing twice, but would do the work twice
    tags=["credits", "alerts"],
) as dag:
    CreditAlertsOperator(
        task_id="check_credit_alerts",
        reservation_conn_id="credits_reservations",
        warehouse_conn_id="credits_warehouse",
    )
