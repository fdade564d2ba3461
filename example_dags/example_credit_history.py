"""
Land credit history into a warehouse every day: where credits went, and how fast they burn.

LocalLeads exposes a transaction ledger: land it incrementally into ``credit_transactions``. LeadMagic
and TrueMail expose only a balance: snapshot every vendor into ``credit_balance_snapshots`` so each has a
history for burn rate and runway. ``credits_warehouse`` is any common-sql connection (SQLite, Postgres,
MySQL, ...); ``make demo`` points it at an embedded SQLite file.

Connections: ``localleads_default``, ``leadmagic_default``, ``truemail_default``, ``credits_warehouse``.
``airflow-credits sandbox`` prints all of them for the offline sandbox (as ``airflow connections add``
commands and as environment variables).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_credits_provider.transfers.credit_balance_to_sql import CreditBalanceToSqlOperator
from airflow_credits_provider.transfers.credit_transactions_to_sql import CreditTransactionsToSqlOperator

WAREHOUSE = "credits_warehouse"

with DAG(
    "example_credit_history",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one landing at a time per table
    tags=["credits", "example"],
    doc_md=__doc__,
) as dag:
    CreditTransactionsToSqlOperator(
        task_id="land_localleads_transactions",
        credit_conn_id="localleads_default",
        sql_conn_id=WAREHOUSE,
        retries=2,
    )
    for vendor in ("leadmagic", "localleads", "truemail"):
        CreditBalanceToSqlOperator(
            task_id=f"snapshot_{vendor}",
            credit_conn_id=f"{vendor}_default",
            sql_conn_id=WAREHOUSE,
            retries=2,
        )
