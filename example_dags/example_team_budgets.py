"""
Two teams' DAGs on one LeadMagic account, each capped by its own credit budget.

The account ``leadmagic_shared`` may hold plenty of credits; the growth team may still spend only 50 a
month (Berlin time) and sales ops 30 a week (New York time). The budgets are defined in
``team_budgets.yaml`` next to this file and loaded into the reservation database with
``airflow-credits budgets import <this folder>/team_budgets.yaml --conn-id credits_reservations``.

- ``example_budget_growth``: ``CreditPreflightOperator(budget="growth", on_insufficient="skip")``:
  a run its budget cannot cover is skipped, with the budget's state in the message, even though the
  account could pay.
- ``example_budget_sales``: ``CreditPreflightSensor(budget="sales", deferrable=True)``: waits in the
  triggerer while the budget's other runs hold credits, sleeps until the budget renews when only that
  can help, and fails at once when the renewal comes after its deadline (or the run needs more than the
  whole cap).

Each run reserves ``leads + 10 %`` (a budget implies a reservation) and releases it after the work,
recording what it spent against the budget. Run offline against the sandbox:
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
def enrich(leads: int) -> dict[str, object]:
    """Find each lead's email: one LeadMagic credit per email found."""
    from airflow_credits_provider.hooks.leadmagic import LeadMagicHook

    found = 0
    with LeadMagicHook(CONN_ID) as hook:
        for i in range(leads):
            result = hook.request(
                "POST",
                "/v1/people/email-finder",
                json={"first_name": f"lead{i}", "last_name": "Example", "domain": f"team{i}.example"},
            )
            found += result.get("status") == "valid"
    return {"enriched": found}


def _dag(dag_id: str, team: str) -> DAG:
    return DAG(
        dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=4,
        params={"leads": Param(5, type="integer", minimum=0)},
        tags=["credits", "budgets", team],
    )


with _dag("example_budget_growth", "growth") as growth:
    gate = CreditPreflightOperator(
        task_id="reserve_credits",
        credit_conn_id=CONN_ID,
        estimated_cost=COST_FROM_XCOM,
        margin_percent=10,
        budget="growth",
        reservation_conn_id=RESERVATIONS_CONN_ID,
        account=ACCOUNT,
        on_insufficient="skip",
    )
    leads = count_leads()
    release = CreditReleaseOperator(
        task_id="release_credits", reserved_by="reserve_credits", reservation_conn_id=RESERVATIONS_CONN_ID
    )
    leads >> gate >> enrich(leads) >> release.as_teardown(setups=gate)

with _dag("example_budget_sales", "sales") as sales:
    wait = CreditPreflightSensor(
        task_id="reserve_credits",
        credit_conn_id=CONN_ID,
        estimated_cost=COST_FROM_XCOM,
        margin_percent=10,
        budget="sales",
        reservation_conn_id=RESERVATIONS_CONN_ID,
        account=ACCOUNT,
        deferrable=True,  # waits in the triggerer, holding no worker slot
        poke_interval=POKE_INTERVAL,
        timeout=6 * 3600,
    )
    leads = count_leads()
    release = CreditReleaseOperator(
        task_id="release_credits", reserved_by="reserve_credits", reservation_conn_id=RESERVATIONS_CONN_ID
    )
    leads >> wait >> enrich(leads) >> release.as_teardown(setups=wait)
