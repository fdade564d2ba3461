"""
Two teams' mapped enrichments on one shared LeadMagic account, for the CeleryExecutor test.

Each team's task group is mapped over 20 shards; every shard reserves 10 credits on the account
``celery_shared`` under its team's budget (skipped when the balance or the budget cannot cover it),
spends them (after ``seconds`` of other work) and releases its reservation, recording the usage.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, task, task_group

from airflow_credits_provider.operators.preflight import CreditPreflightOperator
from airflow_credits_provider.operators.reservation import CreditReleaseOperator

CONN_ID = "leadmagic_default"
RESERVATIONS = "credits_reservations"
ACCOUNT = "celery_shared"
COST = 10


@task(retries=1, retry_delay=timedelta(seconds=1))
def enrich(shard: int, params: dict | None = None) -> int:
    """Work for ``seconds``, then spend COST credits (one per email found)."""
    from airflow_credits_provider.hooks.leadmagic import LeadMagicHook

    time.sleep(float((params or {}).get("seconds", 0)))
    with LeadMagicHook(CONN_ID) as hook:
        for i in range(COST):
            hook.request(
                "POST",
                "/v1/people/email-finder",
                json={"first_name": f"s{shard}l{i}", "last_name": "Celery", "domain": "shared.example"},
            )
    return COST


with DAG(
    "celery_shared_account",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=8,
    max_active_tasks=64,
    params={"seconds": Param(0.5, type="number", minimum=0)},
    tags=["credits", "celery"],
):
    for team in ("team_a", "team_b"):

        @task_group(group_id=team)
        def spend(shard: int, team: str = team) -> None:
            reserve = CreditPreflightOperator(
                task_id="reserve",
                credit_conn_id=CONN_ID,
                estimated_cost=COST,
                reserve=True,
                reservation_conn_id=RESERVATIONS,
                account=ACCOUNT,
                budget=team,
                on_insufficient="skip",
                reservation_ttl=timedelta(minutes=10),
                retries=1,  # a retry on another worker reuses the reservation its first try made
                retry_delay=timedelta(seconds=1),
            )
            release = CreditReleaseOperator(
                task_id="release", reserved_by=f"{team}.reserve", reservation_conn_id=RESERVATIONS
            )
            # The teardown runs after the work whether it succeeded or failed, and is skipped with the
            # reservation when the shard did not fit.
            reserve >> enrich(shard) >> release.as_teardown(setups=reserve)

        spend.expand(shard=list(range(20)))
