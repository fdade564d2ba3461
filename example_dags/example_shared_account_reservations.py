"""
Two enrichment DAGs sharing one LeadMagic account: each reserves the credits it will spend.

Without reservations, two runs that each need 8,000 credits both pass a balance check of 10,000 and the
second dies half-way. Here each run reserves ``leads + 10 %`` against the account ``leadmagic_shared``
before spending, and releases it (recording what it spent) when its enrichment ends, failed or not:

- ``example_shared_account_contacts``: CreditPreflightOperator(reserve=True): fails at once when the
  account's free credits (balance minus other runs' reservations) do not cover it.
- ``example_shared_account_companies``: CreditPreflightSensor(reserve=True, deferrable=True): waits,
  without holding a worker slot, until another run releases credits or the account is topped up.

Reservations live in the SQL connection ``credits_reservations`` (SQLite in the demo; PostgreSQL or
MySQL/MariaDB where workers run on several machines). Run offline against the sandbox:
``make demo`` in a checkout, or ``airflow-credits sandbox`` and the connections it prints.

Connections: ``leadmagic_default``, ``credits_reservations``.
``airflow-credits sandbox`` prints all of them for the offline sandbox (as ``airflow connections add``
commands and as environment variables).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_credits_provider.operators.preflight import CreditPreflightOperator
from airflow_credits_provider.operators.reservation import CreditReleaseOperator
from airflow_credits_provider.sensors.preflight import CreditPreflightSensor

POKE_INTERVAL = float(os.environ.get("CREDITS_EXAMPLE_POKE_INTERVAL", "300"))
CONN_ID = "leadmagic_default"
RESERVATIONS_CONN_ID = "credits_reservations"
ACCOUNT = "leadmagic_shared"
COST_FROM_XCOM = "{{ ti.xcom_pull(task_ids='count_leads') }}"


@task
def count_leads(params: dict | None = None) -> int:
    """Count the leads waiting for enrichment (here: the ``leads`` param)."""
    return int((params or {})["leads"])


@task
def enrich(leads: int, params: dict | None = None) -> dict[str, object]:
    """Find each lead's email: one LeadMagic credit per email found."""
    import time

    from airflow_credits_provider.hooks.leadmagic import LeadMagicHook

    pause = float((params or {}).get("seconds_per_lead", 0))
    found = 0
    with LeadMagicHook(CONN_ID) as hook:
        for i in range(leads):
            result = hook.request(
                "POST",
                "/v1/people/email-finder",
                json={"first_name": f"lead{i}", "last_name": "Example", "domain": f"company{i}.example"},
            )
            found += result.get("status") == "valid"
            time.sleep(pause)
    return {"enriched": found}


def _params() -> dict[str, Param]:
    return {
        "leads": Param(5, type="integer", minimum=0),
        "seconds_per_lead": Param(0, type="number", minimum=0),
    }


with DAG(
    "example_shared_account_contacts",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    params=_params(),
    tags=["credits", "reservations"],
) as contacts:
    reserve = CreditPreflightOperator(
        task_id="reserve_credits",
        credit_conn_id=CONN_ID,
        estimated_cost=COST_FROM_XCOM,
        margin_percent=10,
        reserve=True,
        reservation_conn_id=RESERVATIONS_CONN_ID,
        account=ACCOUNT,
    )
    release = CreditReleaseOperator(
        task_id="release_credits", reserved_by="reserve_credits", reservation_conn_id=RESERVATIONS_CONN_ID
    )
    leads = count_leads()
    leads >> reserve >> enrich(leads) >> release.as_teardown(setups=reserve)

# The waiting variant, in each of the sensor's modes: deferrable (``example_shared_account_companies``,
# waits in the triggerer), poke and reschedule (each poke, or rescheduled try, reserves again).
for mode in ("deferrable", "poke", "reschedule"):
    suffix = "" if mode == "deferrable" else f"_{mode}"
    with DAG(
        f"example_shared_account_companies{suffix}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=4,
        params=_params(),
        tags=["credits", "reservations"],
    ) as waiting_dag:
        waiting = CreditPreflightSensor(
            task_id="reserve_credits",
            credit_conn_id=CONN_ID,
            estimated_cost=COST_FROM_XCOM,
            margin_percent=10,
            reserve=True,
            reservation_conn_id=RESERVATIONS_CONN_ID,
            account=ACCOUNT,
            deferrable=mode == "deferrable",
            mode="reschedule" if mode == "reschedule" else "poke",
            poke_interval=POKE_INTERVAL,
            timeout=6 * 3600,
        )
        leads = count_leads()
        (
            leads
            >> waiting
            >> enrich(leads)
            >> CreditReleaseOperator(
                task_id="release_credits",
                reserved_by="reserve_credits",
                reservation_conn_id=RESERVATIONS_CONN_ID,
            ).as_teardown(setups=waiting)
        )
    globals()[f"companies{suffix}"] = waiting_dag  # a module-level name, as DAG loaders look for
del waiting_dag
