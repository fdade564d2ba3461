"""
Gate a TrueMail SMTP validation on its price: units x TrueMail's own price per email.

The preflight reads ``validation_types.smtp.credits`` from TrueMail (10 credits per email) and fails at
once, with TrueMail's upgrade text, when the plan cannot run SMTP validation at all.

Connections: ``truemail_default``.
``airflow-credits sandbox`` prints all of them for the offline sandbox (as ``airflow connections add``
commands and as environment variables).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_credits_provider.operators.preflight import CreditPreflightOperator


@task
def count_emails(params: dict | None = None) -> int:
    """Count the emails to validate (here: the ``emails`` param)."""
    return int((params or {})["emails"])


@task
def validate(emails: int) -> int:
    """Submit the validation job (your TrueMail bulk call goes here)."""
    print(f"Submitting {emails} emails for SMTP validation")
    return emails


with DAG(
    "example_truemail_validation",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["credits", "example"],
    params={"emails": Param(1000, type="integer", minimum=0)},
    doc_md=__doc__,
) as dag:
    count = count_emails()
    gate = CreditPreflightOperator(
        task_id="credit_preflight",
        credit_conn_id="truemail_default",
        units="{{ ti.xcom_pull(task_ids='count_emails') }}",
        validation_type="smtp",
        margin=100,
    )
    count >> gate >> validate(count)
