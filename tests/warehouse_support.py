"""Warehouses for landing tests: SQLite files and the PostgreSQL server, through Airflow connections."""

from __future__ import annotations

import contextlib
import json
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_credits_provider.sandbox.history import steady_history

__all__ = ["steady_history"]  # the synthetic history lives with the sandbox; tests import it from here too

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from pathlib import Path

    import pytest


def sqlite_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, path: Path) -> None:
    """Point ``conn_id`` at a SQLite file."""
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "sqlite", "host": str(path)})
    )


def conn_json_from_uri(uri: str, conn_type: str, port: int, login: str, schema: str) -> str:
    """An Airflow connection (JSON form) of ``conn_type`` for the server named by ``uri``.

    :param port: the default port; ``login`` and ``schema`` likewise, when the URI does not say
    """
    parts = urlsplit(uri)
    return json.dumps(
        {
            "conn_type": conn_type,
            "host": parts.hostname,
            "port": parts.port or port,
            "login": parts.username or login,
            "password": parts.password,
            "schema": parts.path.lstrip("/") or schema,
        }
    )


def postgres_conn_json(uri: str) -> str:
    """An Airflow ``postgres`` connection (JSON form) for the server named by ``uri``."""
    return conn_json_from_uri(uri, "postgres", 5432, "postgres", "postgres")


def postgres_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, uri: str) -> None:
    """Point ``conn_id`` at the PostgreSQL server named by ``uri``."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", postgres_conn_json(uri))


@contextlib.contextmanager
def postgres_schema_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, uri: str) -> Iterator[str]:
    """Point ``conn_id`` at a new schema of its own on the PostgreSQL server named by ``uri``.

    For tables whose names are fixed (the example DAGs' defaults): CI's lanes run the same tests at
    once against one database, and unqualified names resolve through the connection's search_path.
    Yields the schema's name and drops it afterwards.
    """
    from airflow_credits_provider.sql.connections import sql_hook_for

    schema = unique_table("schema")
    postgres_connection(monkeypatch, conn_id, uri)
    sql_hook_for(conn_id).run(f"CREATE SCHEMA {schema}")
    conn = json.loads(postgres_conn_json(uri))
    conn["extra"] = {**conn.get("extra", {}), "options": f"-c search_path={schema}"}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    try:
        yield schema
    finally:
        sql_hook_for(conn_id).run(f"DROP SCHEMA {schema} CASCADE")


def unique_table(prefix: str = "tx") -> str:
    """A table name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def landed(conn_id: str, table: str) -> list[tuple[Any, ...]]:
    """(transaction_id, type, amount, description, created_at ISO) rows, sorted, as the table holds them."""
    from airflow_credits_provider.sql.connections import sql_hook_for
    from airflow_credits_provider.sql.tables import parse_stored_time

    hook = sql_hook_for(conn_id)
    rows = hook.get_records(f"SELECT transaction_id, type, amount, description, created_at FROM {table}")
    return sorted(
        (r[0], r[1], Decimal(str(r[2])).normalize(), r[3], parse_stored_time(r[4]).isoformat())  # type: ignore[union-attr]
        for r in rows
    )


def ledger_rows(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The sandbox ledger in the same shape as :func:`landed`."""
    import pendulum

    return sorted(
        (
            r["id"],
            r["type"],
            Decimal(r["amount"]).normalize(),
            r["description"],
            pendulum.parse(r["createdAt"]).isoformat(),
        )  # type: ignore[union-attr]
        for r in records
    )


def drop(conn_id: str, *tables: str) -> None:
    """Drop test tables."""
    from airflow_credits_provider.sql.connections import sql_hook_for

    hook = sql_hook_for(conn_id)
    for table in tables:
        hook.run(f"DROP TABLE IF EXISTS {table}")


def seed_snapshots(
    conn_id: str, table: str, vendor: str, account: str, history: list[tuple[datetime, Decimal]]
) -> None:
    """Land past balance snapshots of ``account`` the way CreditBalanceToSqlOperator lands its rows."""
    from airflow_credits_provider.sql.connections import sql_hook_for
    from airflow_credits_provider.sql.snapshot_history import land_snapshots

    land_snapshots(sql_hook_for(conn_id), table, vendor, account, history)
