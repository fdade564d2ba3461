"""CreditBalanceToSqlOperator: land a balance snapshot of any credit connection into a table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_credits_provider.sql.connections import check_names, sql_hook_for
from airflow_credits_provider.sql.landing import LandingTarget
from airflow_credits_provider.transfers.base import CreditToSqlBaseOperator

if TYPE_CHECKING:
    from airflow_credits_provider.compat import Context


class CreditBalanceToSqlOperator(CreditToSqlBaseOperator):
    """Land one normalised balance snapshot of any credit connection into ``credit_balance_snapshots``.

    LeadMagic and TrueMail expose a balance but no ledger; snapshots taken on a schedule give every
    vendor a history, from which a dashboard computes burn rate and runway. One row per run, keyed on
    (vendor, account, fetched_at): vendor, account, fetched_at, available, total, monthly, used,
    bonus, locked, plan, period_end, next_reset_at, loaded_at and the vendor's raw payload.

    :param credit_conn_id: the credit connection (any vendor) (templated)
    :param sql_conn_id: any common-sql connection (templated)
    :param table: target table (templated)
    :param schema: target schema, or ``None`` for the connection's default (templated)
    :param create_table: create the table when missing
    :param account: label stored with the row (default: ``credit_conn_id``) (templated)
    """

    default_table = "credit_balance_snapshots"
    lineage_input = "balance"

    def land(self, context: Context) -> dict[str, Any]:
        """Fetch the balance once and land it; return the snapshot (JSON-friendly, no key)."""
        import pendulum

        from airflow_credits_provider.hooks.resolve import get_credit_hook
        from airflow_credits_provider.sql.tables import raw_json, to_naive_utc

        check_names(self.table, self.schema)  # before any connection or request
        target = LandingTarget.snapshots(sql_hook_for(self.sql_conn_id), self.table, self.schema)
        if self.create_table:
            target.create()
        hook = get_credit_hook(self.credit_conn_id)
        balance = hook.get_balance()
        account = self.account or self.credit_conn_id

        def ts(value: Any) -> Any:
            return to_naive_utc(value) if value is not None else None

        target.data.upsert(
            [
                (
                    balance.vendor,
                    account,
                    ts(balance.fetched_at),
                    balance.available,
                    balance.total,
                    balance.monthly,
                    balance.used,
                    balance.bonus,
                    balance.locked,
                    balance.plan,
                    ts(balance.period_end),
                    ts(balance.next_reset_at),
                    ts(pendulum.now("UTC")),
                    raw_json(balance.raw),
                )
            ]
        )
        self._lineage = {"source": hook.client.settings.base_url}
        self.log.info(
            "Landed a %s balance snapshot of %s into %s", balance.vendor, account, target.data.qualified
        )
        return {"account": account, **balance.to_dict()}
