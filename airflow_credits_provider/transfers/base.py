"""What the landing operators share: resolving both sides, the target tables, assets and lineage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow_credits_provider.compat import BaseOperator
from airflow_credits_provider.errors import LedgerNotAvailableError
from airflow_credits_provider.transfers.tables import (
    CURSOR_COLUMNS,
    CURSOR_KEY,
    CURSOR_SUFFIX,
    SNAPSHOT_COLUMNS,
    SNAPSHOT_KEY,
    TRANSACTION_COLUMNS,
    TRANSACTION_KEY,
    WarehouseTable,
    check_identifier,
    check_transactions_table,
    parse_stored_time,
    to_naive_utc,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from pendulum import DateTime

    from airflow_credits_provider.compat import Context
    from airflow_credits_provider.hooks.base import CreditApiHook
    from airflow_credits_provider.ledger import LedgerHook


def check_names(table: str, schema: str | None, *, with_cursor: bool = False) -> None:
    """Validate the rendered table and schema names (injection attempts fail here, before any I/O).

    :param with_cursor: the table gets a cursor table ``<table>_cursor``, whose name must fit too
    """
    if with_cursor:
        check_transactions_table(table)
    else:
        check_identifier(table, "Table name")
    if schema:
        check_identifier(schema, "Schema name")


def sql_hook_for(sql_conn_id: str) -> Any:
    """Resolve ``sql_conn_id`` to its hook and check it is a common-sql ``DbApiHook``."""
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from airflow_credits_provider.hooks.resolve import checked_hook, get_connection

    conn = get_connection(sql_conn_id)
    return checked_hook(
        sql_conn_id, conn, DbApiHook, "not a SQL database connection (no common-sql DbApiHook)"
    )


def require_ledger(hook: CreditApiHook) -> LedgerHook:
    """``hook`` as a :class:`~airflow_credits_provider.ledger.LedgerHook`; a clear error without one."""
    from airflow_credits_provider.ledger import LedgerHook

    if not isinstance(hook, LedgerHook):
        raise LedgerNotAvailableError(
            f"{hook.vendor_class.display_name} (connection {hook.credit_conn_id!r}) has no transaction "
            "ledger API. Use CreditBalanceToSqlOperator on a schedule to build its history from balance "
            "snapshots."
        )
    return hook


class LandingTarget:
    """A landing table plus, for incremental landing, its cursor table ``<table>_cursor``."""

    def __init__(self, data: WarehouseTable, cursor: WarehouseTable | None = None) -> None:
        self.data = data
        self.cursor = cursor

    @classmethod
    def transactions(cls, hook: Any, table: str, schema: str | None) -> LandingTarget:
        """The transactions table and its cursor table."""
        check_transactions_table(table)
        return cls(
            WarehouseTable(hook, table, schema, TRANSACTION_COLUMNS, TRANSACTION_KEY),
            WarehouseTable(hook, f"{table}{CURSOR_SUFFIX}", schema, CURSOR_COLUMNS, CURSOR_KEY),
        )

    @classmethod
    def snapshots(cls, hook: Any, table: str, schema: str | None) -> LandingTarget:
        """The balance snapshots table."""
        return cls(WarehouseTable(hook, table, schema, SNAPSHOT_COLUMNS, SNAPSHOT_KEY))

    def create(self) -> None:
        """Create missing tables."""
        self.data.create()
        if self.cursor is not None:
            self.cursor.create()

    def read_cursor(self, vendor: str, account: str) -> DateTime | None:
        """The newest ``created_at`` landed by the last completed run, or ``None``."""
        assert self.cursor is not None
        row = self.cursor.hook.get_first(
            f"SELECT cursor_at FROM {self.cursor.qualified} WHERE {self.cursor.where_key(CURSOR_KEY)}",
            parameters=(vendor, account),
        )
        return parse_stored_time(row[0]) if row else None

    def write_cursor(self, vendor: str, account: str, cursor_at: datetime, now: datetime) -> None:
        """Move the cursor (only after a completed run)."""
        assert self.cursor is not None
        self.cursor.upsert([(vendor, account, to_naive_utc(cursor_at), to_naive_utc(now))])

    def delete_stale(self, vendor: str, account: str, run_started: DateTime) -> int:
        """Delete this account's rows not re-landed since ``run_started`` (full refresh); return how many."""
        from contextlib import closing

        table = self.data
        cells = table.adapt((vendor, account, to_naive_utc(run_started)))
        where = f"{table.where_key(('vendor', 'account'))} AND loaded_at < {table.param()}"
        sql = f"DELETE FROM {table.qualified} WHERE {where}"
        with closing(table.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            cur.execute(sql, cells)
            removed = int(cur.rowcount or 0)
            conn.commit()
        return removed


def table_asset(sql_conn_id: str, schema: str | None, table: str) -> list[Any]:
    """The table as an Airflow Asset outlet, unless a name is still a template."""
    if any("{{" in str(part) for part in (sql_conn_id, schema, table)):
        return []
    from airflow_credits_provider.compat import Asset

    name = ".".join(p for p in (sql_conn_id, schema, table) if p)
    return [Asset(name=f"credits_sql://{name}", uri=f"credits-sql://{name.replace('.', '/')}")]


def openlineage_facets(
    lineage: dict[str, str], source_name: str, sql_conn_id: str, schema: str | None, table: str
) -> Any:
    """OpenLineage datasets API -> table, or ``None`` when the OpenLineage provider is not installed."""
    try:
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    if not lineage:
        return None
    return OperatorLineage(
        inputs=[Dataset(namespace=lineage["source"], name=source_name)],
        outputs=[
            Dataset(namespace=f"credits-sql://{sql_conn_id}", name=".".join(p for p in (schema, table) if p))
        ],
    )


class CreditToSqlBaseOperator(BaseOperator):
    """Base of the landing operators: the credit and SQL connections, the target table, its asset, lineage.

    :param credit_conn_id: the credit connection (templated)
    :param sql_conn_id: any common-sql connection (templated)
    :param table: target table (default: the operator's own) (templated)
    :param schema: target schema, or ``None`` for the connection's default (templated)
    :param create_table: create missing tables
    :param account: label stored with each row (default: ``credit_conn_id``) (templated)
    """

    template_fields: Sequence[str] = ("credit_conn_id", "sql_conn_id", "table", "schema", "account")
    ui_color = "#e8f4fd"
    default_table: ClassVar[str]
    lineage_input: ClassVar[str]

    def __init__(
        self,
        *,
        credit_conn_id: str,
        sql_conn_id: str,
        table: str | None = None,
        schema: str | None = None,
        create_table: bool = True,
        account: str | None = None,
        **kwargs: Any,
    ) -> None:
        table = self.default_table if table is None else table
        kwargs.setdefault("outlets", table_asset(sql_conn_id, schema, table))
        super().__init__(**kwargs)
        self.credit_conn_id = credit_conn_id
        self.sql_conn_id = sql_conn_id
        self.table = table
        self.schema = schema
        self.create_table = create_table
        self.account = account
        self._lineage: dict[str, str] = {}

    def execute(self, context: Context) -> Any:
        """Land; a misconfigured connection or table, or a row that cannot be stored, fails without retries.

        Retrying cannot fix those (the same row or name fails again); network errors, vendor outages
        and database errors other than a rejected row keep the task's retries.
        """
        from airflow_credits_provider.compat import AirflowFailException
        from airflow_credits_provider.errors import CreditConnectionConfigError, RowRejectedError

        try:
            return self.land(context)
        except (CreditConnectionConfigError, RowRejectedError) as exc:
            raise AirflowFailException(str(exc)) from exc

    def land(self, context: Context) -> Any:
        """Do the landing (each operator's own)."""
        raise NotImplementedError

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the vendor API -> the table (``None`` without the OpenLineage provider)."""
        return openlineage_facets(
            self._lineage,
            f"{self.credit_conn_id}/{self.lineage_input}",
            self.sql_conn_id,
            self.schema,
            self.table,
        )
