"""CreditReleaseOperator: give back the credits a preflight reserved, and record what the run spent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_credits_provider.compat import BaseOperator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_credits_provider.compat import Context
    from airflow_credits_provider.models import CreditBalance


class CreditReleaseOperator(BaseOperator):
    """Release the reservations a preflight task took in this DAG run, and record their usage.

    Use it as the teardown of the preflight (its setup), so that it runs whether the spending work
    succeeded or failed::

        reserve = CreditPreflightOperator(task_id="reserve_credits", reserve=True, ...)
        release = CreditReleaseOperator(
            task_id="release_credits", reserved_by="reserve_credits", reservation_conn_id="credits_db"
        )
        reserve >> enrich >> release.as_teardown(setups=reserve)

    For each reservation released, the balance after the work is fetched (once per credit connection)
    and a row goes into the usage table: what was reserved, the balance before and after, and the credits
    spent (exact when no other reservation on the account overlapped; see docs/reservations.md).
    Releasing is idempotent: what is already released or expired is left alone. A failing balance call
    does not stop the release: the usage row is then written without a balance after.

    When this task is itself a mapped instance (``map_index >= 0``), it releases only the reservation of
    the preflight instance with the same map index (a mapped task group); otherwise every instance's.

    :param reserved_by: the task id(s) of the preflight(s) whose reservations to release (templated).
        Inside a task group, the preflight's id without the group's prefix names the one in the same
        group (``"reserve"`` is ``"<group>.reserve"``); a name that is no task of the DAG fails the task
    :param reservation_conn_id: the SQL connection holding the reservation tables (templated)
    :param reservation_table: the reservations table (default ``credit_reservations``)
    :param reservation_schema: the schema of the reservation and usage tables
    :param usage_table: where released reservations are recorded (default ``credit_usage``)
    :param record_balance_after: fetch the balance after the work for the usage row (one request per
        credit connection)
    """

    template_fields: Sequence[str] = ("reserved_by", "reservation_conn_id")
    ui_color = "#fdf1d6"

    def __init__(
        self,
        *,
        reserved_by: str | Sequence[str],
        reservation_conn_id: str,
        reservation_table: str | None = None,
        reservation_schema: str | None = None,
        usage_table: str | None = None,
        record_balance_after: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.reserved_by = reserved_by
        self.reservation_conn_id = reservation_conn_id
        self.reservation_table = reservation_table
        self.reservation_schema = reservation_schema
        self.usage_table = usage_table
        self.record_balance_after = record_balance_after

    def _reserving_task_ids(self) -> list[str]:
        """``reserved_by`` as the DAG's task ids: a name inside this task's group gets the group's prefix.

        A name that is no task of the DAG fails the release, which would otherwise find nothing to
        release and leave the reservations held until their TTL.
        """
        named = [self.reserved_by] if isinstance(self.reserved_by, str) else list(self.reserved_by)
        dag = getattr(self, "dag", None)
        if dag is None or not hasattr(dag, "has_task"):
            return named
        group = getattr(getattr(self, "task_group", None), "group_id", None)
        found = []
        for name in named:
            if dag.has_task(name):
                found.append(name)
            elif group and dag.has_task(f"{group}.{name}"):
                found.append(f"{group}.{name}")
            else:
                from airflow_credits_provider.errors import UnknownReservingTaskError

                inside = (
                    f" (this task is in group {group!r}: its tasks are '{group}.<task_id>')" if group else ""
                )
                raise UnknownReservingTaskError(
                    f"Task {self.task_id!r}: reserved_by names {name!r}, which is no task of DAG "
                    f"{dag.dag_id!r}{inside}. Name the preflight task that reserved; nothing was released."
                )
        return found

    def execute(self, context: Context) -> list[dict[str, Any]]:
        """Release, record usage, and return the usage records (JSON-friendly, for XCom)."""
        from airflow_credits_provider.reservations import ReservationStore
        from airflow_credits_provider.sql.connections import sql_hook_for

        options: dict[str, Any] = {
            "table": self.reservation_table,
            "schema": self.reservation_schema,
            "usage_table": self.usage_table,
        }
        store = ReservationStore(
            sql_hook_for(self.reservation_conn_id), **{k: v for k, v in options.items() if v is not None}
        )
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        task_ids = self._reserving_task_ids()
        try:
            records = store.release(
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_ids=task_ids,
                map_index=map_index if map_index is not None and map_index >= 0 else None,
                balance_after=self._balance_after if self.record_balance_after else None,
            )
        finally:
            store.close()  # its one transaction is done
        if records.alerts:  # claimed in the release's transaction: sent now that it has committed
            from airflow_credits_provider.notifications.delivery import deliver_claimed

            deliver_claimed(store, records.alerts, self.log)
        if not records:
            self.log.info("No active reservation of %s in this run: nothing to release.", ", ".join(task_ids))
        from airflow_credits_provider.parsing import format_amount

        for record in records:
            r = record.reservation
            spent = (
                "unknown"
                if record.spent is None
                else f"{format_amount(record.spent)}{'' if record.exact else ' at most'}"
            )
            self.log.info(
                "Released %s credits on account %r held by %s[%s]: balance %s before, %s after, spent %s%s",
                format_amount(r.amount),
                r.account,
                r.holder.task_id,
                r.holder.map_index,
                format_amount(r.balance_before),
                "unknown" if record.balance_after is None else format_amount(record.balance_after),
                spent,
                f" ({record.overlapping} overlapping reservation(s))" if record.overlapping else "",
            )
        return [record.to_dict() for record in records]

    def _balance_after(self, credit_conn_id: str) -> CreditBalance | None:
        """The balance after the work, or ``None`` (logged) when the vendor cannot say right now."""
        from airflow_credits_provider.errors import CreditProviderError
        from airflow_credits_provider.hooks.resolve import get_credit_hook

        try:
            return get_credit_hook(credit_conn_id).get_balance()
        except CreditProviderError as exc:
            self.log.warning("Releasing without the balance after the work: %s", exc)
            return None
