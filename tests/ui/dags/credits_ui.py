"""DAGs the Credits UI tests run with ``airflow dags test``: one holds credits, one spends and releases.

- ``credits_ui_hold`` reserves 44 credits on ``leadmagic_default`` and never releases them (the hold
  stays until its TTL): the Credits pages must show it.
- ``private_credits_ui_spend`` reserves 30, spends 5 credits (five LeadMagic lookups) and releases,
  recording its usage; only admins may read it (tests.ui.auth.PrivateDagsAuthManager).
- ``credits_ui_refused`` is refused twice and reserves nothing: once by the budget (the account has
  the credits), once by the balance.

Both reserve on the account ``ui_shared`` and draw on its budget ``ui-team`` (cap 500 a month, Berlin
time), which the stack defines with the real ``airflow-credits budgets set``: the connection's page
shows the budget of an account its runs reserved on.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from airflow_credits_provider.operators.preflight import CreditPreflightOperator
from airflow_credits_provider.operators.reservation import CreditReleaseOperator

RESERVATIONS = "credits_reservations"
START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG("credits_ui_hold", schedule=None, start_date=START, catchup=False):
    CreditPreflightOperator(
        task_id="reserve_credits",
        credit_conn_id="leadmagic_default",
        estimated_cost=44,
        budget="ui-team",
        account="ui_shared",
        reservation_conn_id=RESERVATIONS,
    )


@task
def spend(lookups: int = 5) -> int:
    from airflow_credits_provider.hooks.leadmagic import LeadMagicHook

    with LeadMagicHook("leadmagic_default") as hook:
        for i in range(lookups):
            hook.request(
                "POST",
                "/v1/people/email-finder",
                json={"first_name": f"ui{i}", "last_name": "Test", "domain": f"ui{i}.example"},
            )
    return lookups


with DAG("private_credits_ui_spend", schedule=None, start_date=START, catchup=False):
    reserve = CreditPreflightOperator(
        task_id="reserve_credits",
        credit_conn_id="leadmagic_default",
        estimated_cost=30,
        budget="ui-team",
        account="ui_shared",
        reservation_conn_id=RESERVATIONS,
    )
    release = CreditReleaseOperator(
        task_id="release_credits", reserved_by="reserve_credits", reservation_conn_id=RESERVATIONS
    )
    reserve >> spend() >> release.as_teardown(setups=reserve)


with DAG("credits_ui_refused", schedule=None, start_date=START, catchup=False):
    # The account has the credits, the budget (500 a month) does not: refused by the budget.
    CreditPreflightOperator(
        task_id="over_budget",
        credit_conn_id="leadmagic_default",
        estimated_cost=600,
        budget="ui-team",
        account="ui_shared",
        reservation_conn_id=RESERVATIONS,
        on_insufficient="skip",
    )
    # More than the account holds: refused by the balance.
    CreditPreflightOperator(
        task_id="over_balance",
        credit_conn_id="leadmagic_default",
        estimated_cost=1_000_000,
        on_insufficient="skip",
    )
