"""
Airflow 3.0's LocalExecutor with the fix 3.1.0 shipped for it (apache/airflow#56010), for the stack tests.

Airflow 3.0.x's ``LocalExecutor.queue_workload`` puts a task on its workers' queue at once, inside the
scheduler's transaction that moves the task instance from ``scheduled`` to ``queued``. An idle worker
(one left from an earlier task) takes it before that transaction commits; the execution API then refuses
to start a task instance it still sees as ``scheduled`` (409 "TI was not in a state where it could be
marked as running") and the task fails before it ran ("Executor ... reported that the task instance ...
finished with state failed, but the task instance's state attribute is queued": apache/airflow#52754).
Seen in this project's CI on Airflow 3.0.6: one of the partial-run example's four mapped tasks, started
together, failed that way, and the DAG run with it.

Airflow 3.1.0 fixed it by holding the workload until the executor's heartbeat, which the scheduler calls
after the commit; this class does the same on 3.0 (``AIRFLOW__CORE__EXECUTOR`` names it in
tests/test_full_stack.py on Airflow < 3.1 only), so the stack tests check the provider, not that race.
docs/install.md tells users on 3.0 what to do about it.
"""

from __future__ import annotations

from typing import Any

from airflow.executors.local_executor import LocalExecutor as _LocalExecutor


class LocalExecutor(_LocalExecutor):
    """Airflow 3.0's LocalExecutor, sending workloads to its workers from the heartbeat (as 3.1+ does)."""

    def queue_workload(self, workload: Any, session: Any = None) -> None:
        """Hold the workload until the heartbeat (after the scheduler's commit), as BaseExecutor does."""
        self.queued_tasks[workload.ti.key] = workload

    def _process_workloads(self, workloads: list[Any]) -> None:
        """Called by ``trigger_tasks`` from the heartbeat: hand the workloads to the workers."""
        for workload in workloads:
            self.activity_queue.put(workload)
            del self.queued_tasks[workload.ti.key]
        with self._unread_messages:
            self._unread_messages.value += len(workloads)
        self._check_workers()
