"""
Wait for LocalLeads' monthly credit renewal instead of polling all month.

When the balance is short but the next renewal (``resetDay`` / ``lastResetAt``) will cover the
search, the sensor makes no calls until the renewal, then checks once. If the renewal comes after the
sensor's deadline it fails at once, saying so.

Connections: ``localleads_default``.
``airflow-credits sandbox`` prints all of them for the offline sandbox (as ``airflow connections add``
commands and as environment variables).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_credits_provider.sensors.preflight import CreditPreflightSensor

POKE_INTERVAL = float(os.environ.get("CREDITS_EXAMPLE_POKE_INTERVAL", "3600"))


@task
def search_leads(params: dict | None = None) -> int:
    """Run the lead search (your LocalLeads call goes here)."""
    return int((params or {})["searches"])


with DAG(
    "example_localleads_reset_wait",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["credits", "example"],
    params={"searches": Param(100, type="integer", minimum=0)},
    doc_md=__doc__,
) as dag:
    wait = CreditPreflightSensor(
        task_id="wait_for_credits",
        credit_conn_id="localleads_default",
        estimated_cost="{{ params.searches }}",
        wait_for_reset=True,
        mode="poke",
        poke_interval=POKE_INTERVAL,
        timeout=35 * 24 * 3600,
    )
    wait >> search_leads()
