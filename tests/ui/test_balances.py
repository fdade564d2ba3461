"""Live balances for the Credits page: parallel, cached per connection, bounded, one line per failure.

Real HTTP against the sandbox; the cache's clock is injected, so nothing here waits for a TTL.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from airflow_credits_provider.ui.balances import BalanceCache, list_credit_connections, one_line
from tests.conftest import CANARY

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _conn(sandbox: SandboxServer, conn_id: str, vendor: str, **fields: object) -> object:
    from airflow.models.connection import Connection

    spec = sandbox.connection(vendor)
    spec.update(fields)
    return Connection.from_json(json.dumps(spec), conn_id=conn_id)


def test_balances_come_in_parallel_and_are_cached_until_the_ttl(sandbox: SandboxServer) -> None:
    clock = Clock()
    cache = BalanceCache(ttl=30, timeout=5, clock=clock)
    conns = [_conn(sandbox, "lm", "leadmagic"), _conn(sandbox, "ll", "localleads")]
    sandbox.state.inject("slow", vendor="leadmagic", delay=0.5, times=1)
    loop = asyncio.new_event_loop()
    try:
        first = loop.run_until_complete(cache.get_many(conns))
        # Fetched one after the other, the first connection's balance would come first; in parallel,
        # the slow vendor's comes last.
        assert first["ll"].balance.fetched_at < first["lm"].balance.fetched_at
        assert first["lm"].balance.available == sandbox.state.leadmagic.credits
        assert not first["lm"].cached
        asked = len(sandbox.state.requests_for("leadmagic", "/v1/credits"))
        clock.now += 29
        second = loop.run_until_complete(cache.get_many(conns))
        assert second["lm"].cached
        assert second["ll"].cached
        assert len(sandbox.state.requests_for("leadmagic", "/v1/credits")) == asked
        with sandbox.state.lock:
            sandbox.state.leadmagic.credits = Decimal(7)
        clock.now += 2
        third = loop.run_until_complete(cache.get_many(conns))
        assert not third["lm"].cached
        assert third["lm"].balance.available == 7
    finally:
        loop.close()


def test_concurrent_loads_share_one_request(sandbox: SandboxServer) -> None:
    cache = BalanceCache(ttl=30, timeout=5)
    conn = _conn(sandbox, "lm", "leadmagic")
    sandbox.state.inject("slow", vendor="leadmagic", delay=0.3, times=1)

    async def five_pages() -> list[object]:
        return await asyncio.gather(*(cache.get(conn) for _ in range(5)))

    results = asyncio.run(five_pages())
    assert len(sandbox.state.requests_for("leadmagic", "/v1/credits")) == 1
    assert {r.balance.available for r in results} == {sandbox.state.leadmagic.credits}  # type: ignore[attr-defined]


def test_an_edited_connection_is_fetched_again(sandbox: SandboxServer) -> None:
    cache = BalanceCache(ttl=300, timeout=5)
    good = _conn(sandbox, "lm", "leadmagic")
    assert asyncio.run(cache.get(good)).error is None
    edited = _conn(sandbox, "lm", "leadmagic", password="another-key")
    result = asyncio.run(cache.get(edited))
    assert not result.cached
    assert "rejected the API key" in (result.error or "")


def test_failures_are_one_line_and_never_hold_the_key(sandbox: SandboxServer) -> None:
    cache = BalanceCache(ttl=30, timeout=1)
    sandbox.state.inject("slow", vendor="truemail", delay=3, times=1)
    sandbox.state.inject("html", vendor="localleads", status=502, times=10)
    conns = [
        _conn(sandbox, "rejected", "leadmagic", password=CANARY),
        _conn(sandbox, "slow", "truemail"),
        _conn(sandbox, "html", "localleads", extra={"max_retries": 0}),
        _conn(sandbox, "keyless", "leadmagic", password=""),
    ]
    results = asyncio.run(cache.get_many(conns))
    assert results["slow"].error == "No balance within 1 s (timeout, retries included)."
    assert "502" in (results["html"].error or "")
    assert "no API key" in (results["keyless"].error or "")
    for result in results.values():
        assert result.balance is None
        assert "\n" not in (result.error or "\n")
        assert CANARY not in (result.error or "")


def test_one_line_blanks_the_secret_and_bounds_the_length() -> None:
    line = one_line(f"boom {CANARY}\nsecond line " + "x" * 1000, CANARY)
    assert CANARY not in line
    assert "\n" not in line
    assert len(line) <= 310


def test_connections_are_listed_from_the_environment_first(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, airflow_db: None
) -> None:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id.in_(["db_lm", "shadowed", "not_credit"])).delete()
        for conn_id, conn_type in (
            ("db_lm", "leadmagic"),
            ("shadowed", "truemail"),
            ("not_credit", "sqlite"),
        ):
            session.add(Connection(conn_id=conn_id, conn_type=conn_type, password="k"))
    monkeypatch.setenv("AIRFLOW_CONN_ENV_LL", json.dumps(sandbox.connection("localleads")))
    monkeypatch.setenv("AIRFLOW_CONN_SHADOWED", json.dumps({"conn_type": "sqlite", "host": "/tmp/x.db"}))
    found = {info.conn_id: info for info, _ in list_credit_connections()}
    assert found["db_lm"].source == "metadata database"
    assert found["env_ll"].source == "environment"
    assert found["env_ll"].vendor_name == "LocalLeads"
    assert "shadowed" not in found  # the environment's non-credit connection hides the database's
    assert "not_credit" not in found
