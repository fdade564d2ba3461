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
    return dag


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
