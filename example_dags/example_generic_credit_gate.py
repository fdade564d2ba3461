"""
Gate an email verification on any credit API: here ZeroBounce, through the generic ``credit_api`` connection.

``credit_api_default`` is a connection of type ``credit_api`` whose extra names a preset
(``{"preset": "zerobounce"}``) or describes the API; the sensor waits in the triggerer until the
balance covers the batch.

Connections: ``credit_api_default``.
``airflow-credits sandbox`` prints all of them for the offline sandbox (as ``airflow connections add``
commands and as environment variables).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_credits_provider.sensors.preflight import CreditPreflightSensor

POKE_INTERVAL = float(os.environ.get("CREDITS_EXAMPLE_POKE_INTERVAL", "300"))


@task
def verify_emails(params: dict | None = None) -> int:
    """Submit the verification batch (your vendor call goes here)."""
    return int((params or {})["emails"])


with DAG(
    "example_generic_credit_gate",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["credits", "example"],
    params={"emails": Param(2000, type="integer", minimum=0)},
    doc_md=__doc__,
) as dag:
    wait = CreditPreflightSensor(
        task_id="credit_preflight",
        credit_conn_id="credit_api_default",
        estimated_cost="{{ params.emails }}",
        deferrable=True,
        poke_interval=POKE_INTERVAL,
        timeout=6 * 60 * 60,
    )
    wait >> verify_emails()
