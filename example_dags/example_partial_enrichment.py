"""
Enrich what the credits allow now, and carry the rest to the next run.

A table of pending work (``pending_leads`` in ``credits_warehouse``) holds the leads waiting for an
email. Each run:

1. ``add_new_leads`` adds the run's new leads (the ``new_leads`` param) as ``pending``.
2. ``count_pending`` counts every pending lead, those earlier runs could not afford included.
3. ``reserve_credits`` (``CreditPreflightOperator(on_insufficient="partial")``, one LeadMagic credit per
   lead plus a 10 % margin) sizes the run to the free credits, after other runs' reservations, and
   reserves exactly that: it pushes ``affordable_units`` and ``deferred_units`` to XCom. When the
   credits cover fewer than ``min_units`` leads the run is skipped (``below_min_units="skip"``) and
   everything stays pending.
4. ``pick_batches`` takes the oldest ``affordable_units`` pending leads (a SQL ``LIMIT``) in batches of
   10, and ``enrich`` runs once per batch (dynamic task mapping), marking each lead ``enriched``.
5. ``release_credits`` (a teardown) releases the reservation and records what the run spent.

``example_partial_enrichment_wait`` is the same with ``CreditPreflightSensor(on_insufficient="partial",
deferrable=True)``: below ``min_units`` it waits in the triggerer until at least that many leads fit
(credits released by other runs, a top-up, a renewal), then reserves as many as fit.

The leads no run could afford stay ``pending``: the next run (after the renewal, or a top-up) counts
them again and picks them first. Run offline against the sandbox:
``make demo`` in a checkout, or ``airflow-credits sandbox`` and the connections it prints. See
docs/partial-runs.md.

Connections: ``leadmagic_default``, ``credits_warehouse``, ``credits_reservations``.
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

# Seconds between balance checks while waiting; the demo and tests shorten it.
POKE_INTERVAL = float(os.environ.get("CREDITS_EXAMPLE_POKE_INTERVAL", "300"))

CONN_ID = "leadmagic_default"
WAREHOUSE = "credits_warehouse"
RESERVATIONS_CONN_ID = "credits_reservations"
TABLE = "pending_leads"
BATCH = 10


def _warehouse():  # noqa: ANN202 - a common-sql hook
    from airflow_credits_provider.sql.connections import sql_hook_for

    return sql_hook_for(WAREHOUSE)


@task
def add_new_leads(params: dict | None = None) -> int:
    """Add this run's new leads to the pending work (here: ``new_leads`` generated ones)."""
    hook = _warehouse()
    hook.run(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (lead_id INTEGER PRIMARY KEY, domain VARCHAR(255) NOT NULL, "
        "status VARCHAR(16) NOT NULL, email VARCHAR(255))"
    )
    first = int(hook.get_first(f"SELECT COALESCE(MAX(lead_id), 0) FROM {TABLE}")[0]) + 1
    new = int((params or {}).get("new_leads", 0))
    p = hook.placeholder
    for lead_id in range(first, first + new):
        hook.run(
            f"INSERT INTO {TABLE} (lead_id, domain, status) VALUES ({p}, {p}, 'pending')",
            parameters=(lead_id, f"company{lead_id}.example"),
        )
    return new


@task
def count_pending() -> int:
    """Every pending lead: this run's and those earlier runs deferred."""
    return int(_warehouse().get_first(f"SELECT COUNT(*) FROM {TABLE} WHERE status = 'pending'")[0])


@task
def pick_batches(ti=None) -> list[list[int]]:  # noqa: ANN001 - Airflow passes the task instance
    """The oldest ``affordable_units`` pending leads, in batches for the mapped ``enrich``."""
    affordable = int(ti.xcom_pull(task_ids="reserve_credits", key="affordable_units"))
    if affordable <= 0:
        return []
    rows = _warehouse().get_records(
        f"SELECT lead_id FROM {TABLE} WHERE status = 'pending' ORDER BY lead_id LIMIT {affordable}"
    )
    ids = [int(row[0]) for row in rows]
    return [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]


@task
def enrich(lead_ids: list[int]) -> int:
    """Find each lead's email (one LeadMagic credit each) and mark it enriched."""
    from airflow_credits_provider.hooks.leadmagic import LeadMagicHook

    hook = _warehouse()
    p = hook.placeholder
    with LeadMagicHook(CONN_ID) as leadmagic:
        for lead_id in lead_ids:
            found = leadmagic.request(
                "POST",
                "/v1/people/email-finder",
                json={
                    "first_name": f"lead{lead_id}",
                    "last_name": "Example",
                    "domain": f"company{lead_id}.example",
                },
            )
            hook.run(
                f"UPDATE {TABLE} SET status = 'enriched', email = {p} WHERE lead_id = {p}",
                parameters=(found.get("email"), lead_id),
            )
    return len(lead_ids)


def _dag(dag_id: str, wait: bool) -> DAG:
    with DAG(
        dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        params={"new_leads": Param(50, type="integer", minimum=0)},
        tags=["credits", "example", "partial"],
        doc_md=__doc__,
    ) as dag:
        sizing = {
            "task_id": "reserve_credits",
            "credit_conn_id": CONN_ID,
            "units": "{{ ti.xcom_pull(task_ids='count_pending') }}",
            "unit_cost": 1,
            "margin_percent": 10,
            "on_insufficient": "partial",
            "min_units": 5,
            "reserve": True,
            "reservation_conn_id": RESERVATIONS_CONN_ID,
        }
        if wait:  # below min_units: wait in the triggerer (no worker slot) for credits to come back
            gate = CreditPreflightSensor(
                **sizing, deferrable=True, poke_interval=POKE_INTERVAL, timeout=6 * 3600
            )
        else:  # below min_units: skip this run; the next one tries again
            gate = CreditPreflightOperator(**sizing, below_min_units="skip")
        added = add_new_leads()
        pending = count_pending()
        batches = pick_batches()
        release = CreditReleaseOperator(
            task_id="release_credits", reserved_by="reserve_credits", reservation_conn_id=RESERVATIONS_CONN_ID
        )
        added >> pending >> gate >> batches
        enrich.expand(lead_ids=batches) >> release.as_teardown(setups=gate)
    return dag


example_partial_enrichment = _dag("example_partial_enrichment", wait=False)
example_partial_enrichment_wait = _dag("example_partial_enrichment_wait", wait=True)
