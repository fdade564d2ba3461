"""
Mapped shards on one shared LeadMagic account: each shard reserves what it will spend, or is skipped.

A list of lead batches is enriched by a task group mapped over the batches. Every shard
``reserve >> enrich >> release`` reserves its batch's credits (plus 10 %) on the account
``leadmagic_shared``, so shards running at once, in this run and in others, never spend the same
credits; a shard that does not fit is skipped (``on_insufficient="skip"``) and its release with it.

Inside a task group the tasks' ids carry the group's prefix (``shard.reserve``): the release names its
preflight as written in the group (``reserved_by="reserve"``), and finds the one of its own shard.

Run it against the offline sandbox with ``airflow dags test example_mapped_reservations`` once its
connections are set (below); tests/test_example_reservations.py runs it with ``dag.test()``.

Connections: ``leadmagic_default``, ``credits_reservations``.
``airflow-credits sandbox`` prints all of them for the offline sandbox (as ``airflow connections add``
commands and as environment variables).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task, task_group

from airflow_credits_provider.operators.preflight import CreditPreflightOperator
from airflow_credits_provider.operators.reservation import CreditReleaseOperator

CONN_ID = "leadmagic_default"
RESERVATIONS_CONN_ID = "credits_reservations"
ACCOUNT = "leadmagic_shared"


@task
def batches(params: dict | None = None) -> list[int]:
    """The batches waiting for enrichment: their sizes (here: ``shards`` batches of ``leads``)."""
    params = params or {}
    return [int(params["leads"])] * int(params["shards"])


@task
def enrich(leads: int) -> int:
    """Find each lead's email: one LeadMagic credit per email found."""
    from airflow_credits_provider.hooks.leadmagic import LeadMagicHook

    with LeadMagicHook(CONN_ID) as hook:
        for i in range(leads):
            hook.request(
                "POST",
                "/v1/people/email-finder",
                json={"first_name": f"lead{i}", "last_name": "Example", "domain": f"shard{i}.example"},
            )
    return leads


with DAG(
    "example_mapped_reservations",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"shards": Param(3, type="integer", minimum=0), "leads": Param(5, type="integer", minimum=0)},
    tags=["credits", "reservations"],
) as dag:

    @task_group(group_id="shard")
    def shard(leads: int) -> None:
        reserve = CreditPreflightOperator(
            task_id="reserve",
            credit_conn_id=CONN_ID,
            estimated_cost=leads,
            margin_percent=10,
            reserve=True,
            reservation_conn_id=RESERVATIONS_CONN_ID,
            account=ACCOUNT,
            on_insufficient="skip",
        )
        release = CreditReleaseOperator(
            task_id="release", reserved_by="reserve", reservation_conn_id=RESERVATIONS_CONN_ID
        )
        reserve >> enrich(leads) >> release.as_teardown(setups=reserve)

    shard.expand(leads=batches())
