"""LocalLeadsHook over real HTTP against the sandbox."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import pendulum
import pytest

from airflow_credits_provider.errors import AuthenticationError, BadResponseError
from airflow_credits_provider.hooks.localleads import LocalLeadsHook
from airflow_credits_provider.sandbox import DEFAULT_KEYS

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer


def test_balance(connections: SandboxServer) -> None:
    state = connections.state
    state.localleads.monthly, state.localleads.bonus, state.localleads.used = (
        Decimal(500),
        Decimal(40),
        Decimal(510),
    )
    this_month = pendulum.now("UTC").start_of("month")
    state.localleads.reset_day = 1
    state.localleads.last_reset_at = this_month.to_iso8601_string()
    balance = LocalLeadsHook().get_balance()
    assert balance.available == Decimal(30)
    assert balance.period_start == this_month
    assert balance.next_reset_at == this_month.add(months=1)
    [request] = state.requests_for("localleads")
    assert request.path == "/api/v1/credits/balance"
    assert request.headers["authorization"] == f"Bearer {DEFAULT_KEYS['localleads']}"


@pytest.mark.parametrize("meta_style", ["offset", "page"])
def test_iter_transactions_pages_the_whole_ledger(connections: SandboxServer, meta_style: str) -> None:
    state = connections.state
    state.localleads.meta_style = meta_style
    state.ledger.size = 250
    transactions = list(LocalLeadsHook().iter_transactions())
    assert [t.id for t in transactions] == [r["id"] for r in state.ledger.newest_first()]
    assert len({t.id for t in transactions}) == 250
    assert all(a.created_at >= b.created_at for a, b in zip(transactions, transactions[1:], strict=False))
    queries = [r.query for r in state.requests_for("localleads")]
    assert queries == [
        {"limit": "100", "offset": "0"},
        {"limit": "100", "offset": "100"},
        {"limit": "100", "offset": "200"},
    ]


def test_exact_multiple_of_page_size_stops_on_total(connections: SandboxServer) -> None:
    connections.state.ledger.size = 200
    assert len(list(LocalLeadsHook().iter_transactions(100))) == 200
    assert len(connections.state.requests_for("localleads")) == 2  # meta.total says we are done


def test_transactions_keep_hostile_text_and_signs(connections: SandboxServer) -> None:
    connections.state.ledger.size = 300
    transactions = list(LocalLeadsHook().iter_transactions(50, max_pages=6))
    by_id = {t.id: t for t in transactions}
    for record in connections.state.ledger.newest_first():
        tx = by_id[record["id"]]
        assert tx.description == record["description"]
        assert tx.amount == Decimal(record["amount"])
        assert tx.type == record["type"]
    assert any("DROP TABLE" in (t.description or "") for t in transactions)
    assert {t.type for t in transactions} >= {"DEDUCTION", "MONTHLY_RESET", "TOP_UP", "COUPON"}
    assert any(t.amount < 0 for t in transactions)
    assert any(t.amount > 0 for t in transactions)


def test_max_pages_and_offset(connections: SandboxServer) -> None:
    connections.state.ledger.size = 1000
    got = list(LocalLeadsHook().iter_transactions(10, offset=30, max_pages=2))
    assert [t.id for t in got] == [r["id"] for r in connections.state.ledger.page(30, 20)]
    assert len(connections.state.requests_for("localleads")) == 2


@pytest.mark.parametrize("bad", [0, 101, -1, 2.5, True])
def test_page_size_is_validated_before_any_request(connections: SandboxServer, bad: object) -> None:
    with pytest.raises(ValueError, match="1 to 100"):
        list(LocalLeadsHook().iter_transactions(bad))  # type: ignore[arg-type]
    assert connections.state.requests_for("localleads") == []


def test_nest_401_shape(connections: SandboxServer) -> None:
    connections.state.localleads.error_style = "nest"
    connections.state.set_key("localleads", "ll_other")
    with pytest.raises(AuthenticationError, match="Invalid or expired token") as info:
        LocalLeadsHook().get_balance()
    assert info.value.error_code == "Unauthorized"


def test_wrong_types_in_a_page(connections: SandboxServer) -> None:
    connections.state.inject("wrong_types", "localleads", path="/api/v1/credits/transactions")
    with pytest.raises(BadResponseError, match="'amount'") as info:
        list(LocalLeadsHook().iter_transactions())
    assert info.value.status_code == 200


def test_sandbox_renews_credits_on_the_anniversary(connections: SandboxServer) -> None:
    state = connections.state
    state.localleads.used = Decimal(120)
    two_months_ago = pendulum.now("UTC").subtract(months=2).start_of("day")
    state.localleads.reset_day = two_months_ago.day
    state.localleads.last_reset_at = two_months_ago.to_iso8601_string()
    balance = LocalLeadsHook().get_balance()
    assert balance.used == Decimal(0)
    assert balance.available == Decimal(125)
    assert balance.period_start is not None
    assert balance.period_start > two_months_ago
    assert balance.next_reset_at is not None
    assert balance.next_reset_at > pendulum.now("UTC")
