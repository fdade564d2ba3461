"""PostgreSQL is reachable through Airflow's Postgres provider (the landing operator's path)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.postgres


def test_insert_and_read_back_through_the_postgres_hook(
    monkeypatch: pytest.MonkeyPatch, postgres_conn_uri: str
) -> None:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from airflow_credits_provider.compat import BaseHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_CREDITS_PG", postgres_conn_uri.replace("postgresql://", "postgres://", 1)
    )
    hook = BaseHook.get_connection("credits_pg").get_hook()
    assert isinstance(hook, DbApiHook)
    assert type(hook).__name__ == "PostgresHook"
    hook.run("DROP TABLE IF EXISTS credits_smoke")
    hook.run("CREATE TABLE credits_smoke (id text PRIMARY KEY, amount numeric(20, 6) NOT NULL)")
    try:
        hook.insert_rows("credits_smoke", [("a", "1.5"), ("b", "-2")], target_fields=["id", "amount"])
        hook.insert_rows(
            "credits_smoke",
            [("a", "3.25")],
            target_fields=["id", "amount"],
            replace=True,
            replace_index=["id"],
        )
        rows = hook.get_records("SELECT id, amount::text FROM credits_smoke ORDER BY id")
        assert rows == [("a", "3.250000"), ("b", "-2.000000")]
    finally:
        hook.run("DROP TABLE IF EXISTS credits_smoke")
