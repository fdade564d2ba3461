"""Running the example DAGs for real with dag.test() against the sandbox."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun


def load_dag(module: str, dag_id: str) -> Any:
    """Import an example DAG object from ``example_dags/`` by its dag_id."""
    from airflow.sdk import DAG

    found = [
        v for v in vars(importlib.import_module(f"example_dags.{module}")).values() if isinstance(v, DAG)
    ]
    [dag] = [d for d in found if d.dag_id == dag_id]
    _write_to_metadata_db(dag)
    return dag


def _write_to_metadata_db(dag: Any) -> None:
    """Write ``dag`` and its assets to the metadata database, as the dag-processor does, on Airflow 3.0.

    Airflow 3.0's ``dag.test()`` runs a DAG it never wrote to the database, so the assets of its tasks'
    outlets are never activated and those tasks fail with ``AirflowInactiveAssetInInletOrOutletException``
    (apache/airflow#51644); 3.1's ``dag.test()`` writes the DAG first. Delete with Airflow 3.0 support.
    """
    import airflow
    from packaging.version import Version

    if Version(airflow.__version__) >= Version("3.1"):
        return
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.models.dag import DAG as SchedulerDAG
    from airflow.serialization.serialized_objects import SerializedDAG

    DagBundlesManager().sync_bundles_to_db()

    SchedulerDAG.bulk_write_to_db(
        "dags-folder", None, [SerializedDAG.deserialize_dag(SerializedDAG.serialize_dag(dag))]
    )


def states(run: DagRun) -> dict[str, str]:
    """Task id -> final state of a finished run."""
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def xcom(run: DagRun, task_id: str, key: str = "return_value") -> Any:
    """The XCom a task of ``run`` pushed under ``key``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(run_id=run.run_id, key=key, task_ids=task_id, dag_ids=run.dag_id)
        row = session.scalars(query).first()
        return XComModel.deserialize_value(row) if row is not None else None


def reschedules(run: DagRun, task_id: str) -> int:
    """How many times a task of ``run`` was rescheduled (reschedule-mode sensors)."""
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    ti = run.get_task_instance(task_id)
    assert ti is not None
    with create_session() as session:
        return int(session.scalar(select(func.count()).where(TaskReschedule.ti_id == ti.id)) or 0)


def hold_credits(store: Any, account: str, credits: int, ttl: float = 3600) -> None:
    """Another run's reservation of ``credits`` on ``account`` (LeadMagic's balance, over the sandbox)."""
    from datetime import timedelta
    from decimal import Decimal

    from airflow_credits_provider.hooks.resolve import get_credit_hook
    from airflow_credits_provider.reservations import Holder

    result = store.reserve(
        account=account,
        credit_conn_id="leadmagic_default",
        holder=Holder("another_dag", "another_run", "reserve_credits"),
        amount_for=lambda _b: Decimal(credits),
        fetch_balance=get_credit_hook("leadmagic_default").get_balance,
        ttl=timedelta(seconds=ttl),
    )
    assert result.reservation is not None
