"""
Start the enrichment when credits arrive, instead of polling on a cron.

The asset ``leadmagic_credits_arrived`` is watched by a ``CreditsAvailableTrigger`` running in the
triggerer: when LeadMagic's available credits rise from below 1,000 to 1,000 or more (a monthly reset,
a top-up), the asset gets one event and this DAG runs once. While the balance stays above, nothing
more happens; after it drops below 1,000 again, the next arrival runs it again. The preflight still
checks the balance before spending, since another DAG may have spent it in between.

Needs Airflow's triggerer (``airflow triggerer``): the arrival is an asset event, which ``dag.test()``
and ``make demo`` do not produce (run by hand, the DAG goes straight to the preflight).
tests/test_full_stack.py runs it with a real scheduler and triggerer against the sandbox.

Connections: ``leadmagic_default``.
``airflow-credits sandbox`` prints all of them for the offline sandbox (as ``airflow connections add``
commands and as environment variables).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_credits_provider.operators.preflight import CreditPreflightOperator
from airflow_credits_provider.triggers.credits_available import CreditsAvailableTrigger

CONN_ID = "leadmagic_default"
THRESHOLD = 1000
# Seconds between balance checks in the triggerer; the demo and tests shorten it.
POLL_INTERVAL = float(os.environ.get("CREDITS_EXAMPLE_POKE_INTERVAL", "300"))

CREDITS_ARRIVED = Asset(
    "leadmagic_credits_arrived",
    watchers=[
        AssetWatcher(
            name="leadmagic_credits_watcher",
            trigger=CreditsAvailableTrigger(
                credit_conn_id=CONN_ID, threshold=THRESHOLD, poll_interval=POLL_INTERVAL
            ),
        )
    ],
)


@task
def credits_arrived(**context: object) -> dict[str, object]:
    """What the watcher saw: the event's payload (empty when the run was started by hand)."""
    events = context["triggering_asset_events"][CREDITS_ARRIVED]  # type: ignore[index]
    payload: dict[str, object] = dict(events[-1].extra.get("payload") or {}) if events else {}
    if payload:
        print(
            f"Credits arrived on {payload['credit_conn_id']}: {payload['available']} "
            f"(was {payload.get('previous', 'not seen before')})"
        )
    else:
        print("Started by hand, not by an arrival: going on to the preflight")
    return payload


with DAG(
    "example_start_when_credits_arrive",
    schedule=[CREDITS_ARRIVED],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["credits", "example"],
    doc_md=__doc__,
) as dag:
    credits_arrived() >> CreditPreflightOperator(
        task_id="credit_preflight", credit_conn_id=CONN_ID, estimated_cost=THRESHOLD
    )
