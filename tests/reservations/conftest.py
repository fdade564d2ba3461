"""A reservation database and a LeadMagic account on the sandbox.

The reservation database: a SQLite file, PostgreSQL, MariaDB, or PostgreSQL behind PgBouncer in
transaction pooling mode (tests/pgbouncer.py).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from tests.conftest import set_connection
from tests.mariadb import conn_json, mysql_uri
from tests.pgbouncer import pgbouncer_uri
from tests.receivers import smtp_inbox  # noqa: F401 - the SMTP server the alert tests deliver to
from tests.warehouse_support import drop, postgres_connection, sqlite_connection, unique_table

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from pathlib import Path

    from airflow_credits_provider.sandbox import SandboxServer

RESERVATION_DB = "credits_reservations"
CREDIT_CONN = "leadmagic_default"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        pytest.param("pgbouncer", marks=pytest.mark.postgres),
    ]
)
def reservation_tables(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """Fresh reservation and usage table names behind the ``credits_reservations`` connection."""
    if request.param == "sqlite":
        sqlite_connection(monkeypatch, RESERVATION_DB, tmp_path / "reservations.db")
    elif request.param == "postgres":
        postgres_connection(monkeypatch, RESERVATION_DB, request.getfixturevalue("postgres_conn_uri"))
    elif request.param == "pgbouncer":  # transaction pooling, fewer server connections than reservers
        uri = pgbouncer_uri(request.getfixturevalue("postgres_conn_uri"))
        postgres_connection(monkeypatch, RESERVATION_DB, uri)
    else:
        monkeypatch.setenv(f"AIRFLOW_CONN_{RESERVATION_DB.upper()}", conn_json(mysql_uri()))
    names = {"table": unique_table("res"), "usage_table": unique_table("usage")}
    yield names
    drop(
        RESERVATION_DB,
        names["table"],
        f"{names['table']}_accounts",
        f"{names['table']}_budgets",
        f"{names['table']}_alert_rules",
        f"{names['table']}_alert_claims",
        names["usage_table"],
    )


@pytest.fixture
def leadmagic(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> SandboxServer:
    """``leadmagic_default`` on the sandbox (real HTTP on 127.0.0.1)."""
    set_connection(monkeypatch, CREDIT_CONN, sandbox, "leadmagic")
    return sandbox


def set_credits(sandbox: SandboxServer, credits: Decimal | int) -> None:
    """Set the sandbox LeadMagic account's credits (none frozen)."""
    with sandbox.state.lock:
        sandbox.state.leadmagic.credits = Decimal(credits)
        sandbox.state.leadmagic.credits_frozen = Decimal(0)


class Clock:
    """A settable "now" (naive UTC) for the store."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now
