"""Resolving a SQL connection id to its common-sql hook, and checking table names before any I/O."""

from __future__ import annotations

from typing import Any

from airflow_credits_provider.sql.tables import check_identifier, check_transactions_table


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
