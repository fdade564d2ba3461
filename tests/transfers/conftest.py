"""Shared fixtures for the landing operators: a warehouse table in SQLite or PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.mariadb import conn_json, mysql_uri
from tests.warehouse_support import drop, postgres_connection, sqlite_connection, unique_table

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

WAREHOUSE = "credits_warehouse"
TX_PATH = "/api/v1/credits/transactions"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("postgres-psycopg2", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def warehouse(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """A fresh table name in SQLite, PostgreSQL or MariaDB behind the ``credits_warehouse`` connection.

    PostgreSQL runs twice: through psycopg 3, which the Postgres provider picks when it is installed,
    and through psycopg2, its other driver (the COPY path differs between them).
    """
    if request.param == "sqlite":
        sqlite_connection(monkeypatch, WAREHOUSE, tmp_path / "warehouse.db")
    elif request.param.startswith("postgres"):
        postgres_connection(monkeypatch, WAREHOUSE, request.getfixturevalue("postgres_conn_uri"))
        from airflow.providers.postgres.hooks import postgres

        if request.param == "postgres-psycopg2":
            monkeypatch.setattr(postgres, "USE_PSYCOPG3", False, raising=False)
    else:
        monkeypatch.setenv(f"AIRFLOW_CONN_{WAREHOUSE.upper()}", conn_json(mysql_uri()))
    table = unique_table()
    yield table
    drop(WAREHOUSE, table, f"{table}_cursor")
