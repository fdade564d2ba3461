"""
Gate a LeadMagic enrichment on the credits it will spend.

``count_leads`` counts the leads to enrich; the preflight checks that LeadMagic has that many credits
plus a 10 % margin before ``enrich`` spends any, and ``enrich`` watches ``X-Credits-Remaining`` as it
goes, stopping before it dips under a floor. Four variants show each way to gate:

- ``example_leadmagic_enrichment``: CreditPreflightOperator, fail when short (default).
- ``example_leadmagic_enrichment_skip``: the same, but skip the enrichment instead of failing.
- ``example_leadmagic_enrichment_wait``: CreditPreflightSensor, deferrable: wait for a top-up.
- ``example_leadmagic_enrichment_reschedule``: the sensor in reschedule mode.

Run offline against the sandbox:
``make demo`` in a checkout, or ``airflow-credits sandbox`` and the connections it prints.

Connections: ``leadmagic_default``.
``airflow-credits sandbox`` prints all of them for the offline sandbox (as ``airflow connections add``
commands and as environment variables).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_credits_provider.operators.preflight import CreditPreflightOperator
from airflow_credits_provider.sensors.preflight import CreditPreflightSensor

# Seconds between balance checks while waiting; the demo and tests shorten it.
POKE_INTERVAL = float(os.environ.get("CREDITS_EXAMPLE_POKE_INTERVAL", "300"))
CONN_ID = "leadmagic_default"
COST_FROM_XCOM = "{{ ti.xcom_pull(task_ids='count_leads') }}"


@task
def count_leads(params: dict | None = None) -> int:
    """Count the leads waiting for enrichment (here: the ``leads`` param)."""
    return int((params or {})["leads"])


@task
def enrich(leads: int, params: dict | None = None) -> dict[str, object]:
    """Find each lead's email, watching the balance LeadMagic reports with every answer."""
    from decimal import Decimal

    from airflow_credits_provider.hooks.leadmagic import LeadMagicHook

    floor = Decimal(str((params or {}).get("credit_floor", 0)))
    found = 0
    with LeadMagicHook(CONN_ID) as hook:
        for i in range(leads):
            result = hook.request(
                "POST",
                "/v1/people/email-finder",
                json={"first_name": f"lead{i}", "last_name": "Example", "domain": f"company{i}.example"},
            )
            found += result.get("status") == "valid"
            if hook.last_known_balance is not None and hook.last_known_balance <= floor:
                print(f"Stopping after {i + 1} leads: {hook.last_known_balance} credits left, floor {floor}")
                break
    remaining = hook.last_known_balance
    return {"enriched": found, "credits_remaining": None if remaining is None else str(remaining)}


def _enrichment_dag(dag_id: str, gate: str) -> DAG:
    with DAG(
        dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["credits", "example"],
        params={"leads": Param(5, type="integer", minimum=0), "credit_floor": Param(0, type="integer")},
        doc_md=__doc__,
    ) as dag:
        count = count_leads()
        if gate in ("fail", "skip"):
            check = CreditPreflightOperator(
                task_id="credit_preflight",
                credit_conn_id=CONN_ID,
                estimated_cost=COST_FROM_XCOM,
                margin_percent=10,
                on_insufficient=gate,
                warn_below=1000,
            )
        else:
            check = CreditPreflightSensor(
                task_id="credit_preflight",
                credit_conn_id=CONN_ID,
                estimated_cost=COST_FROM_XCOM,
                margin_percent=10,
                deferrable=gate == "deferrable",
                mode="reschedule" if gate == "reschedule" else "poke",
                poke_interval=POKE_INTERVAL,
                timeout=6 * 60 * 60,
            )
        count >> check >> enrich(count)
    return dag


example_leadmagic_enrichment = _enrichment_dag("example_leadmagic_enrichment", "fail")
example_leadmagic_enrichment_skip = _enrichment_dag("example_leadmagic_enrichment_skip", "skip")
example_leadmagic_enrichment_wait = _enrichment_dag("example_leadmagic_enrichment_wait", "deferrable")
example_leadmagic_enrichment_reschedule = _enrichment_dag(
    "example_leadmagic_enrichment_reschedule", "reschedule"
)
