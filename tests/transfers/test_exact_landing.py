"""Landing is exact and lossless on SQLite, PostgreSQL and MariaDB, over real HTTP to the sandbox ledger.

No row is lost to a short page, no amount is rounded, keys compare exactly, and a row a database cannot
hold exactly fails the run naming its transaction, with the cursor where it was.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_credits_provider.errors import InconsistentLedgerError, RowRejectedError
from airflow_credits_provider.sql.connections import sql_hook_for
from airflow_credits_provider.sql.landing import LandingTarget
from airflow_credits_provider.transfers.credit_transactions_to_sql import CreditTransactionsToSqlOperator
from tests.transfers.conftest import TX_PATH, WAREHOUSE
from tests.warehouse_support import landed, ledger_rows

if TYPE_CHECKING:
    from pendulum import DateTime

    from airflow_credits_provider.sandbox import SandboxServer


def _land(table: str, **kwargs: Any) -> int:
    return CreditTransactionsToSqlOperator(  # type: ignore[no-any-return]
        task_id="land", credit_conn_id="localleads_default", sql_conn_id=WAREHOUSE, table=table, **kwargs
    ).execute({})


def _land_only(table: str, **kwargs: Any) -> int:
    """The landing itself, without the task-level wrapping of errors that retrying cannot fix."""
    return CreditTransactionsToSqlOperator(  # type: ignore[no-any-return]
        task_id="land", credit_conn_id="localleads_default", sql_conn_id=WAREHOUSE, table=table, **kwargs
    ).land({})


def _cursor(table: str) -> DateTime | None:
    target = LandingTarget.transactions(sql_hook_for(WAREHOUSE), table, None)
    return target.read_cursor("localleads", "localleads_default")


def _amounts(table: str) -> dict[str, Decimal]:
    rows = sql_hook_for(WAREHOUSE).get_records(f"SELECT transaction_id, amount FROM {table}")
    return {r[0]: Decimal(str(r[1])) for r in rows}


def test_a_short_page_mid_ledger_loses_nothing(connections: SandboxServer, warehouse: str) -> None:
    state = connections.state
    state.ledger.size = 5000
    # The 11th page answers 40 rows instead of 100 while meta.total still says 5000.
    state.inject("short_page", "localleads", path=TX_PATH, count=40, after=10)
    assert _land(warehouse) == 5000
    assert landed(WAREHOUSE, warehouse) == ledger_rows(state.ledger.newest_first())
    state.ledger.grow(30)
    _land(warehouse)  # the next incremental run finds nothing missing either
    assert landed(WAREHOUSE, warehouse) == ledger_rows(state.ledger.newest_first())


def test_an_empty_page_before_the_total_fails_and_keeps_the_cursor(
    connections: SandboxServer, warehouse: str
) -> None:
    state = connections.state
    state.ledger.size = 300
    _land(warehouse)
    before = _cursor(warehouse)
    state.ledger.grow(450)
    state.inject("short_page", "localleads", path=TX_PATH, count=0, after=2)
    # Which page comes back empty depends on the order concurrent requests arrive in.
    with pytest.raises(
        InconsistentLedgerError, match=r"empty ledger page at offset [1-7]00 while reporting 750"
    ):
        _land(warehouse, batch_size=50)
    assert _cursor(warehouse) == before
    state.clear_faults()
    _land(warehouse)
    assert landed(WAREHOUSE, warehouse) == ledger_rows(state.ledger.newest_first())


def test_an_error_from_the_pages_is_raised_as_it_is_not_blamed_on_the_database(
    connections: SandboxServer, warehouse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen by a new user: an error from the vendor's side (there, the TLS set-up, raised in the paging
    thread) came out as "<table> rejected a row in the batch from  to " and failed the task at once."""
    from airflow_credits_provider.vendors.localleads import LocalLeadsVendor

    state = connections.state
    state.ledger.size = 450
    real_parse = LocalLeadsVendor.parse_records
    pages: list[int] = []

    def parse_then_break(self: LocalLeadsVendor, records: Any) -> Any:
        pages.append(len(records))
        if len(pages) == 3:
            raise RuntimeError("the third page could not be read")
        return real_parse(records)

    monkeypatch.setattr(LocalLeadsVendor, "parse_records", parse_then_break)
    with pytest.raises(RuntimeError, match="the third page could not be read") as caught:
        _land(warehouse, batch_size=100)  # as a task: a RuntimeError keeps the task's retries
    assert not isinstance(caught.value, RowRejectedError)
    assert _cursor(warehouse) is None  # the run did not complete: the cursor did not move
    assert len(landed(WAREHOUSE, warehouse)) == 200  # the two batches before it are committed


EXACT = {
    0: Decimal("12.3456789012345"),
    1: Decimal("-0.00000000001"),
    2: Decimal("123456789012345678901234.123456789012345678901234567891"),
    3: Decimal("0.1234567890123456789012345678"),  # more digits than a float holds
}


def test_amounts_are_stored_exactly(connections: SandboxServer, warehouse: str) -> None:
    state = connections.state
    state.ledger.size = 10
    for index, amount in EXACT.items():
        state.ledger.overrides[index] = {"amount": amount}
    _land(warehouse)
    stored = _amounts(warehouse)
    for index, amount in EXACT.items():
        assert stored[f"txn_{index:09d}"] == amount


def test_keys_compare_exactly(connections: SandboxServer, warehouse: str) -> None:
    state = connections.state
    state.ledger.size = 3
    for index, tx_id in enumerate(["txn_abc", "txn_ABC", "txn_abc "]):
        state.ledger.overrides[index] = {"id": tx_id}
    _land(warehouse)
    assert sorted(_amounts(warehouse)) == ["txn_ABC", "txn_abc", "txn_abc "]
    _land(warehouse, mode="full_refresh")  # idempotent: still three rows
    assert len(_amounts(warehouse)) == 3


def test_a_lone_surrogate_fails_naming_the_transaction(connections: SandboxServer, warehouse: str) -> None:
    state = connections.state
    state.ledger.size = 250
    _land(warehouse)
    before = _cursor(warehouse)
    state.ledger.grow(10)
    state.ledger.overrides[255] = {"description": "broken \ud800 text"}
    with pytest.raises(RowRejectedError, match="transaction_id=txn_000000255.*not valid Unicode"):
        _land_only(warehouse)
    assert _cursor(warehouse) == before
    with pytest.raises(AirflowFailException) as info:  # as a task: failed at once, no retries
        _land(warehouse)
    assert isinstance(info.value.__cause__, RowRejectedError)
    assert _cursor(warehouse) == before


def test_nul_in_text_lands_where_the_database_can_hold_it(
    connections: SandboxServer, warehouse: str, request: pytest.FixtureRequest
) -> None:
    state = connections.state
    state.ledger.size = 5
    state.ledger.overrides[3] = {"description": "before\x00after"}
    if "postgres" in request.node.callspec.id:
        with pytest.raises(RowRejectedError, match="transaction_id=txn_000000003.*NUL character"):
            _land_only(warehouse)
        assert _cursor(warehouse) is None
        return
    _land(warehouse)
    rows = sql_hook_for(WAREHOUSE).get_records(
        f"SELECT description FROM {warehouse} WHERE transaction_id = 'txn_000000003'"
    )
    assert rows[0][0] == "before\x00after"


def test_an_amount_the_column_cannot_hold_fails_or_lands_exactly(
    connections: SandboxServer, warehouse: str, request: pytest.FixtureRequest
) -> None:
    state = connections.state
    state.ledger.size = 5
    tiny = Decimal("-1E-35")  # finer than DECIMAL(65, 30)
    state.ledger.overrides[2] = {"amount": tiny}
    if "mariadb" in request.node.callspec.id:
        with pytest.raises(
            RowRejectedError, match=r"transaction_id=txn_000000002.*-1E-35 does not fit DECIMAL"
        ):
            _land_only(warehouse)
        assert _cursor(warehouse) is None
        return
    _land(warehouse)
    assert _amounts(warehouse)["txn_000000002"] == tiny
