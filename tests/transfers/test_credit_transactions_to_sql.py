"""CreditTransactionsToSqlOperator on SQLite and PostgreSQL, over real HTTP against the sandbox ledger."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_credits_provider.errors import CreditConnectionConfigError, LedgerNotAvailableError
from airflow_credits_provider.transfers.credit_transactions_to_sql import CreditTransactionsToSqlOperator
from tests.transfers.conftest import TX_PATH, WAREHOUSE
from tests.warehouse_support import landed, ledger_rows

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer


def _operator(table: str, **kwargs: Any) -> CreditTransactionsToSqlOperator:
    return CreditTransactionsToSqlOperator(
        task_id="land", credit_conn_id="localleads_default", sql_conn_id=WAREHOUSE, table=table, **kwargs
    )


def _tx_requests(sandbox: SandboxServer) -> list[dict[str, str]]:
    return [r.query for r in sandbox.state.requests_for("localleads", TX_PATH)]


def test_first_load_lands_the_ledger_exactly(connections: SandboxServer, warehouse: str) -> None:
    connections.state.ledger.size = 1234
    assert _operator(warehouse).execute({}) == 1234
    assert landed(WAREHOUSE, warehouse) == ledger_rows(connections.state.ledger.newest_first())
    assert len(_tx_requests(connections)) == 13
    assert {q["limit"] for q in _tx_requests(connections)} == {"100"}


def test_incremental_run_costs_about_one_request_per_page_of_new_rows(
    connections: SandboxServer, warehouse: str
) -> None:
    state = connections.state
    state.ledger.size = 1000
    _operator(warehouse, overlap=timedelta(0)).execute({})
    for new in (250, 200, 0, 37):
        state.clear_requests()
        state.ledger.grow(new)
        assert _operator(warehouse, overlap=timedelta(0)).execute({}) >= new
        requests = len(_tx_requests(connections))
        assert requests <= math.ceil(new / 100) + 1
        # Concurrent pages may arrive in any order; none is skipped or asked twice.
        offsets = sorted(int(q["offset"]) for q in _tx_requests(connections))
        assert offsets == [100 * i for i in range(requests)]
    assert landed(WAREHOUSE, warehouse) == ledger_rows(state.ledger.newest_first())


def test_overlap_rereads_a_window_before_the_cursor(connections: SandboxServer, warehouse: str) -> None:
    connections.state.ledger.size = 500  # one transaction every 10 minutes
    _operator(warehouse).execute({})
    connections.state.clear_requests()
    connections.state.ledger.grow(10)
    # 10 new + the 6 in the last hour before the cursor (+ the cursor's own row) are re-landed.
    assert _operator(warehouse, overlap=timedelta(hours=1)).execute({}) == 17
    assert len(_tx_requests(connections)) == 1


def test_rerun_is_idempotent(connections: SandboxServer, warehouse: str) -> None:
    connections.state.ledger.size = 300
    _operator(warehouse).execute({})
    first = landed(WAREHOUSE, warehouse)
    _operator(warehouse).execute({})
    _operator(warehouse, mode="full_refresh").execute({})
    assert landed(WAREHOUSE, warehouse) == first == ledger_rows(connections.state.ledger.newest_first())


def test_ledger_growing_while_paging_loses_and_duplicates_nothing(
    connections: SandboxServer, warehouse: str
) -> None:
    state = connections.state
    state.ledger.size = 800
    start = set(r["id"] for r in state.ledger.newest_first())
    # After each of the first four pages, 13 newer transactions arrive and push the rest down.
    state.inject("grow_ledger", "localleads", path=TX_PATH, count=13, times=4)
    _operator(warehouse).execute({})
    rows = landed(WAREHOUSE, warehouse)
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids))  # no duplicates
    assert start <= set(ids)  # nothing that existed when the run began was lost
    _operator(warehouse).execute({})  # the next run picks up what arrived meanwhile
    assert landed(WAREHOUSE, warehouse) == ledger_rows(state.ledger.newest_first())


def test_ten_thousand_transactions(connections: SandboxServer, warehouse: str) -> None:
    connections.state.ledger.size = 10_500
    assert _operator(warehouse, batch_size=1000).execute({}) == 10_500
    rows = landed(WAREHOUSE, warehouse)
    expected = ledger_rows(connections.state.ledger.newest_first())
    assert rows == expected
    assert sum(r[2] for r in rows) == sum(r[2] for r in expected)


def test_full_refresh_removes_only_this_accounts_vanished_rows(
    connections: SandboxServer, warehouse: str
) -> None:
    state = connections.state
    state.ledger.size = 200
    _operator(warehouse).execute({})
    _operator(warehouse, account="other_account").execute({})
    state.ledger.size = 150  # the vendor dropped the 50 newest (e.g. a reversed import)
    _operator(warehouse, mode="full_refresh").execute({})
    kept = ledger_rows(state.ledger.newest_first())  # 150 rows, for each account
    vanished = ledger_rows([state.ledger.record(i) for i in range(150, 200)])  # still there for other_account
    assert landed(WAREHOUSE, warehouse) == sorted(kept + kept + vanished)


@pytest.mark.parametrize("bad", ["credit_transactions; DROP TABLE x", "1starts_with_digit", 'quote"d', ""])
def test_injection_in_table_names_is_refused_before_any_request(connections: SandboxServer, bad: str) -> None:
    with pytest.raises(CreditConnectionConfigError, match="not a plain SQL identifier"):
        CreditTransactionsToSqlOperator(
            task_id="land",
            credit_conn_id="localleads_default",
            sql_conn_id="credits_warehouse_sqlite",
            table=bad,
            outlets=[],
        ).land({})
    assert _tx_requests(connections) == []


@pytest.mark.parametrize("length", [57, 63, 64])
def test_too_long_table_names_are_refused_in_the_users_terms(connections: SandboxServer, length: int) -> None:
    with pytest.raises(CreditConnectionConfigError) as info:
        _operator("t" * length, outlets=[]).land({})
    message = str(info.value)
    assert f"has {length} characters; it can have at most 56 because its cursor table" in message
    assert "_cursor'" not in message  # the user never typed that name
    assert _tx_requests(connections) == []


def test_longest_table_name_lands(connections: SandboxServer, warehouse: str) -> None:
    table = (warehouse + "_" * 56)[:56]
    connections.state.ledger.size = 5
    try:
        assert _operator(table).execute({}) == 5
        assert len(landed(WAREHOUSE, table)) == 5
    finally:
        from tests.warehouse_support import drop

        drop(WAREHOUSE, table, f"{table}_cursor")


def test_vendor_without_a_ledger_points_to_snapshots(connections: SandboxServer, warehouse: str) -> None:
    with pytest.raises(LedgerNotAvailableError, match="CreditBalanceToSqlOperator"):
        CreditTransactionsToSqlOperator(
            task_id="land", credit_conn_id="leadmagic_default", sql_conn_id=WAREHOUSE, table=warehouse
        ).land({})


def test_non_sql_connection_is_refused(connections: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CreditConnectionConfigError, match="not a SQL database connection"):
        CreditTransactionsToSqlOperator(
            task_id="land", credit_conn_id="localleads_default", sql_conn_id="truemail_default"
        ).land({})


def test_asset_outlet_and_arguments() -> None:
    op = CreditTransactionsToSqlOperator(task_id="t", credit_conn_id="c", sql_conn_id="wh", schema="finance")
    [asset] = op.outlets
    assert asset.name == "credits_sql://wh.finance.credit_transactions"
    templated = CreditTransactionsToSqlOperator(
        task_id="t2", credit_conn_id="c", sql_conn_id="wh", table="{{ params.t }}"
    )
    assert templated.outlets == []
    with pytest.raises(ValueError, match="page_size"):
        CreditTransactionsToSqlOperator(task_id="t3", credit_conn_id="c", sql_conn_id="wh", page_size=500)
    with pytest.raises(ValueError, match="mode"):
        CreditTransactionsToSqlOperator(task_id="t4", credit_conn_id="c", sql_conn_id="wh", mode="append")


def test_openlineage_facets_name_the_api_and_the_table(connections: SandboxServer, warehouse: str) -> None:
    op = _operator(warehouse)
    assert op.get_openlineage_facets_on_complete(None) is None  # nothing ran yet
    connections.state.ledger.size = 5
    op.execute({})
    lineage = op.get_openlineage_facets_on_complete(None)
    assert lineage.inputs[0].namespace == connections.base_url("localleads")
    assert lineage.inputs[0].name == "localleads_default/transactions"
    assert lineage.outputs[0].name == warehouse


def test_bad_page_mid_run_fails_and_keeps_the_cursor(connections: SandboxServer, warehouse: str) -> None:
    from airflow_credits_provider.errors import BadResponseError

    state = connections.state
    state.ledger.size = 500
    _operator(warehouse).execute({})
    state.ledger.grow(450)
    state.inject("wrong_types", "localleads", path=TX_PATH, times=-1)
    with pytest.raises(BadResponseError, match="'amount'"):
        _operator(warehouse, batch_size=100).execute({})
    state.clear_faults()
    state.clear_requests()
    # The failed run moved no cursor: the retry re-reads from the old one and lands the gap.
    assert _operator(warehouse).execute({}) >= 450
    assert landed(WAREHOUSE, warehouse) == ledger_rows(state.ledger.newest_first())


def test_sql_connection_without_its_provider_names_the_package(
    connections: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SNOW", '{"conn_type": "snowflake", "host": "example"}')
    with pytest.raises(CreditConnectionConfigError, match="pip install apache-airflow-providers-snowflake"):
        CreditTransactionsToSqlOperator(
            task_id="land", credit_conn_id="localleads_default", sql_conn_id="snow", outlets=[]
        ).land({})


def test_missing_sql_connection_is_named(connections: SandboxServer) -> None:
    with pytest.raises(CreditConnectionConfigError, match="Connection 'nowhere' is not defined"):
        CreditTransactionsToSqlOperator(
            task_id="land", credit_conn_id="localleads_default", sql_conn_id="nowhere", outlets=[]
        ).land({})


def test_configuration_errors_fail_without_retries(connections: SandboxServer) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    with pytest.raises(AirflowFailException, match="at most 56 because its cursor table") as info:
        _operator("t" * 60, outlets=[]).execute({})
    assert isinstance(info.value.__cause__, CreditConnectionConfigError)
    assert _tx_requests(connections) == []


def test_a_key_the_vendor_refuses_fails_without_retries_a_vendor_outage_keeps_them(
    connections: SandboxServer, warehouse: str
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_credits_provider.errors import AuthenticationError, VendorUnavailableError
    from airflow_credits_provider.sandbox import DEFAULT_KEYS

    connections.state.set_key("localleads", "another-key")
    with pytest.raises(AirflowFailException, match="rejected the API key") as info:
        _operator(warehouse).execute({})
    assert isinstance(info.value.__cause__, AuthenticationError)
    assert len(_tx_requests(connections)) == 1  # not retried: no retry makes the key valid
    connections.state.set_key("localleads", DEFAULT_KEYS["localleads"])
    connections.state.inject("status", "localleads", path=TX_PATH, status=503, times=99)
    with pytest.raises(VendorUnavailableError):  # the task's retries may see the vendor back
        _operator(warehouse).execute({})
