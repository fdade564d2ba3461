"""What the landing operators share: resolving both sides, the target tables, assets and lineage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow_credits_provider.compat import BaseOperator
from airflow_credits_provider.errors import LedgerNotAvailableError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_credits_provider.client.ledger import LedgerHook
    from airflow_credits_provider.compat import Context
    from airflow_credits_provider.hooks.base import CreditApiHook


def require_ledger(hook: CreditApiHook) -> LedgerHook:
    """``hook`` as a :class:`~airflow_credits_provider.client.ledger.LedgerHook`; a clear error if not."""
    from airflow_credits_provider.client.ledger import LedgerHook

    if not isinstance(hook, LedgerHook):
        raise LedgerNotAvailableError(
            f"{hook.vendor_class.display_name} (connection {hook.credit_conn_id!r}) has no transaction "
            "ledger API. Use CreditBalanceToSqlOperator on a schedule to build its history from balance "
            "snapshots."
        )
    return hook


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
        """Land; what retrying cannot fix fails the task without its retries.

        That is a misconfigured connection or table, a key or plan the vendor refuses, a certificate that
        does not verify (:func:`~airflow_credits_provider.decision.is_fatal`), or a row that cannot be
        stored (the same row fails again); network errors, vendor outages and database errors other than
        a rejected row keep the task's retries.
        """
        from airflow_credits_provider.compat import AirflowFailException
        from airflow_credits_provider.decision import is_fatal
        from airflow_credits_provider.errors import CreditProviderError, RowRejectedError

        try:
            return self.land(context)
        except CreditProviderError as exc:
            if is_fatal(exc) or isinstance(exc, RowRejectedError):
                raise AirflowFailException(str(exc)) from exc
            raise

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
