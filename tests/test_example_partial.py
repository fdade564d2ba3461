"""example_partial_enrichment, run for real with dag.test() against the sandbox and SQLite files."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from airflow_credits_provider.reservations import ReservationStore
from tests.example_dags_support import hold_credits, load_dag, states, xcom
from tests.warehouse_support import sqlite_connection

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_credits_provider.sandbox import SandboxServer

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.integration]

MODULE = "example_partial_enrichment"
DAG_ID = "example_partial_enrichment"


@pytest.fixture
def stores(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[ReservationStore, object]:
    sqlite_connection(monkeypatch, "credits_reservations", tmp_path / "reservations.db")
    sqlite_connection(monkeypatch, "credits_warehouse", tmp_path / "warehouse.db")
    from airflow_credits_provider.sql.connections import sql_hook_for

    return ReservationStore(sql_hook_for("credits_reservations")), sql_hook_for("credits_warehouse")


def leads(warehouse: object, status: str) -> list[int]:
    rows = warehouse.get_records(  # type: ignore[attr-defined]
        "SELECT lead_id FROM pending_leads WHERE status = ? ORDER BY lead_id", parameters=(status,)
    )
    return [int(r[0]) for r in rows]


def test_a_short_account_enriches_what_it_can_and_the_next_run_does_the_rest(
    connections: SandboxServer, stores: tuple[ReservationStore, object]
) -> None:
    reservations, warehouse = stores
    connections.state.leadmagic.credits = Decimal(23)  # 20 leads x 1.1 = 22 fit; 21 x 1.1 = 23.1 do not
    first = load_dag(MODULE, DAG_ID).test(run_conf={"new_leads": 50})
    assert set(states(first).values()) == {"success"}
    decision = xcom(first, "reserve_credits", "credit_preflight")
    assert (decision["units"], decision["affordable_units"], decision["deferred_units"]) == (50, 20, 30)
    assert xcom(first, "reserve_credits", "affordable_units") == 20
    assert xcom(first, "reserve_credits", "deferred_units") == 30
    assert decision["reservation"]["amount"] == "22"
    assert decision["message"].startswith("Partial run: the credits cover 20 of 50 units; 30 deferred")
    assert leads(warehouse, "enriched") == list(range(1, 21))  # the oldest first
    assert leads(warehouse, "pending") == list(range(21, 51))
    assert len(connections.state.requests_for("leadmagic", "/v1/people/email-finder")) == 20
    assert connections.state.leadmagic.credits == Decimal(3)
    assert reservations.active("leadmagic_default") == []

    connections.state.leadmagic.credits = Decimal(1000)  # the renewal
    # The release shared the balance after the first run's work; reservers reuse it for balance_max_age
    # (30 s): the next scheduled run comes later than that, so forget it here.
    reservations.hook.run("UPDATE credit_reservations_accounts SET balance_seq = NULL")
    second = load_dag(MODULE, DAG_ID).test(run_conf={"new_leads": 0})
    assert set(states(second).values()) == {"success"}
    decision = xcom(second, "reserve_credits", "credit_preflight")
    assert (decision["affordable_units"], decision["deferred_units"]) == (30, 0)
    assert decision["reservation"]["amount"] == "33"
    assert leads(warehouse, "pending") == []
    assert leads(warehouse, "enriched") == list(range(1, 51))
    assert connections.state.leadmagic.credits == Decimal(970)


def test_other_runs_reservations_shrink_the_run(
    connections: SandboxServer, stores: tuple[ReservationStore, object]
) -> None:
    reservations, warehouse = stores
    connections.state.leadmagic.credits = Decimal(100)
    hold_credits(reservations, "leadmagic_default", 80, ttl=3600)
    run = load_dag(MODULE, DAG_ID).test(run_conf={"new_leads": 30})
    decision = xcom(run, "reserve_credits", "credit_preflight")
    # 20 free: 18 leads x 1.1 = 19.8 fit, 19 x 1.1 = 20.9 do not.
    assert (decision["affordable_units"], decision["deferred_units"]) == (18, 12)
    assert decision["reserved_by_others"] == "80"
    assert len(leads(warehouse, "enriched")) == 18
    assert [r.holder.dag_id for r in reservations.active("leadmagic_default")] == ["another_dag"]


def test_below_min_units_the_run_is_skipped_and_nothing_is_spent(
    connections: SandboxServer, stores: tuple[ReservationStore, object]
) -> None:
    _, warehouse = stores
    connections.state.leadmagic.credits = Decimal(5)  # 4 leads x 1.1 = 4.4: fewer than min_units=5
    run = load_dag(MODULE, DAG_ID).test(run_conf={"new_leads": 50})
    result = states(run)
    assert result["reserve_credits"] == "skipped"
    assert result["pick_batches"] == "skipped"
    decision = xcom(run, "reserve_credits", "credit_preflight")
    assert decision["passed"] is False
    assert (decision["affordable_units"], decision["deferred_units"]) == (0, 50)
    assert decision["message"].startswith("The credits cover 4 of 50 units, fewer than min_units (5)")
    assert (
        "need 5.5 (5 units x 1 credits (given) + margin 0.5), available 5, short by 0.5."
        in decision["message"]
    )
    assert connections.state.requests_for("leadmagic", "/v1/people/email-finder") == []
    assert len(leads(warehouse, "pending")) == 50


def test_the_waiting_variant_defers_until_min_units_fit_then_takes_what_fits(
    connections: SandboxServer, stores: tuple[ReservationStore, object]
) -> None:
    """Another run holds all but 3 credits until its reservation expires (as a killed run's would)."""
    reservations, warehouse = stores
    connections.state.leadmagic.credits = Decimal(100)
    hold_credits(reservations, "leadmagic_default", 97, ttl=3)
    dag = load_dag(MODULE, "example_partial_enrichment_wait")
    dag.get_task("reserve_credits").poke_interval = 0.2  # the module may have been imported before
    run = dag.test(run_conf={"new_leads": 120})
    assert set(states(run).values()) == {"success"}
    decision = xcom(run, "reserve_credits", "credit_preflight")
    # Deferred while 3 were free (2 leads, fewer than min_units=5); then 100 free: 90 x 1.1 = 99 fit.
    assert (decision["affordable_units"], decision["deferred_units"]) == (90, 30)
    assert decision["reservation"]["amount"] == "99"
    assert len(leads(warehouse, "enriched")) == 90
    assert len(leads(warehouse, "pending")) == 30


def test_a_top_up_counts_at_once_and_a_decision_on_a_shared_balance_says_how_old_it_is(
    connections: SandboxServer, stores: tuple[ReservationStore, object]
) -> None:
    """Seen by a new user: a top-up right after a run went unseen, and the message said to top up.

    A balance another run shared may grant a reservation, never refuse or shrink one: the run after the
    top-up is decided on a balance fetched then. The run after that fits on the balance the release
    shared, and its message says how old that balance is and that a reservation or a release read it
    (a new user's trial read "by another reserver" for a release's balance as wrong).
    """
    connections.state.leadmagic.credits = Decimal(23)
    first = load_dag(MODULE, DAG_ID).test(run_conf={"new_leads": 50})
    assert "Balance read" not in xcom(first, "reserve_credits", "credit_preflight")["message"]
    connections.state.leadmagic.credits = Decimal(1000)  # a top-up within balance_max_age of the release
    second = load_dag(MODULE, DAG_ID).test(run_conf={"new_leads": 0})
    assert states(second)["reserve_credits"] == "success"  # the 30 carried leads, on the top-up
    decided = xcom(second, "reserve_credits", "credit_preflight")
    assert decided["balance"]["available"] == "1000"
    assert "Balance read" not in decided["message"]
    third = load_dag(MODULE, DAG_ID).test(run_conf={"new_leads": 5})
    assert states(third)["reserve_credits"] == "success"
    assert re.search(
        r"\(Balance read \d+s ago by an earlier reservation or release on account 'leadmagic_default' "
        r"and reused, as balance_max_age is 30s; 0 asks the vendor every time\.\)$",
        xcom(third, "reserve_credits", "credit_preflight")["message"],
    )
