"""Resolving a SQL connection id to its common-sql hook, and checking table names before any I/O."""

from __future__ import annotations

import functools
import os
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


def missing_sqlite_file(conn: Any) -> str | None:
    """The file a SQLite connection names, when that file does not exist (else ``None``).

    Opening it would create an empty database, which a reader then reports as holding nothing.
    """
    path = conn.host or ""
    if conn.conn_type != "sqlite" or not path or path.startswith(("file:", ":memory:")):
        return None
    return None if os.path.exists(path) else path


def sql_hook_for(sql_conn_id: str, *, read_only: bool = False, conn: Any = None) -> Any:
    """Resolve ``sql_conn_id`` to its hook and check it is a common-sql ``DbApiHook``.

    :param read_only: the caller only reads: a SQLite file that does not exist is an error then,
        instead of a new empty database
    :param conn: the connection ``sql_conn_id`` names, when the caller has looked it up already
    :raises MissingDatabaseFileError: ``read_only`` and the connection's SQLite file does not exist
    """
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from airflow_credits_provider.errors import MissingDatabaseFileError
    from airflow_credits_provider.hooks.connections import checked_hook, get_connection

    conn = conn if conn is not None else get_connection(sql_conn_id)
    if read_only and (path := missing_sqlite_file(conn)):
        raise MissingDatabaseFileError(
            f"Connection {sql_conn_id!r} names the SQLite file {path}, which does not exist: nothing "
            "has been landed there yet (the landing operators create it on their first run), or the "
            "connection's host is not the file they write to."
        )
    hook = checked_hook(
        sql_conn_id, conn, DbApiHook, "not a SQL database connection (no common-sql DbApiHook)"
    )
    quiet_statement_log(hook)
    return hook


def quiet_statement_log(hook: Any) -> None:
    """Keep common-sql's per-statement lines off task logs for the provider's own statements.

    ``DbApiHook`` logs every statement (``log_sql``), ``Rows affected: 1`` after each and ``Loaded 1 rows
    into ... so far`` per insert, at INFO: a reservation or a snapshot would fill the task log with them.
    The hook's warnings and errors still show; the provider's operators log what they did themselves.
    """
    hook.log_sql = False
    hook._log = _WarningsOnly(hook.log)


class _WarningsOnly:
    """A logger that passes on warnings and errors and drops debug and info lines."""

    def __init__(self, log: Any) -> None:
        self._inner = log

    def debug(self, *args: Any, **kwargs: Any) -> None:
        """Dropped."""

    def info(self, *args: Any, **kwargs: Any) -> None:
        """Dropped."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def wait_on_sqlite_locks(hook: Any, seconds: float) -> None:
    """Make every connection ``hook`` opens to a SQLite file wait up to ``seconds`` for another's lock.

    Python's ``sqlite3`` waits 5 s for a lock, then fails with ``database is locked``: twenty reservers
    on one file of a busy machine outlast that. Every statement through the hook (``run``, ``get_first``,
    ``get_conn``) then waits as long as a reservation's transaction does. Other databases are left as
    they are (their lock waits are set per transaction). Calling it again sets the new wait.
    """
    if str(getattr(hook, "dialect_name", "") or "") != "sqlite":
        return
    open_conn = getattr(hook.get_conn, "__wrapped__", hook.get_conn)
    busy_ms = max(1, int(seconds * 1000))

    @functools.wraps(open_conn)
    def get_conn() -> Any:
        conn = open_conn()
        conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        return conn

    hook.get_conn = get_conn
