"""The shared-account example DAGs, run for real with dag.test() against the sandbox and a SQLite file."""

from __future__ import annotations

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

MODULE = "example_shared_account_reservations"


@pytest.fixture
def reservations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ReservationStore:
    monkeypatch.setenv("CREDITS_EXAMPLE_POKE_INTERVAL", "0.2")
    sqlite_connection(monkeypatch, "credits_reservations", tmp_path / "reservations.db")
    from airflow_credits_provider.sql.connections import sql_hook_for

    return ReservationStore(sql_hook_for("credits_reservations"))


def hold(store: ReservationStore, credits: int, ttl: float = 3600) -> None:
    """Another run's reservation on the shared account."""
    hold_credits(store, "leadmagic_shared", credits, ttl)


def usage_rows(store: ReservationStore) -> list[tuple[object, ...]]:
    return [
        tuple(r)
        for r in store.hook.get_records(
            "SELECT dag_id, task_id, outcome, reserved, balance_before, balance_after, spent, exact "
            "FROM credit_usage ORDER BY released_at"
        )
    ]


def test_a_run_reserves_spends_and_releases_with_its_usage(
    connections: SandboxServer, reservations: ReservationStore, capfd: pytest.CaptureFixture[str]
) -> None:
    connections.state.leadmagic.credits = Decimal(100)
    run = load_dag(MODULE, "example_shared_account_contacts").test(run_conf={"leads": 4})
    assert states(run) == {
        "count_leads": "success",
        "reserve_credits": "success",
        "enrich": "success",
        "release_credits": "success",
    }
    decision = xcom(run, "reserve_credits", "credit_preflight")
    assert decision["passed"] is True
    assert decision["reservation"]["amount"] == "4.4"
    assert decision["reservation"]["account"] == "leadmagic_shared"
    (released,) = xcom(run, "release_credits")
    assert (released["balance_before"], released["balance_after"], released["spent"]) == ("100", "96", "4")
    assert usage_rows(reservations) == [
        ("example_shared_account_contacts", "reserve_credits", "released", "4.4", "100", "96", "4", 1)
    ]
    assert reservations.active("leadmagic_shared") == []
    # The amounts in the log as in XCom (and on the other databases: the next test).
    assert (
        "Released 4.4 credits on account 'leadmagic_shared' held by reserve_credits[-1]: "
        "balance 100 before, 96 after, spent 4" in capfd.readouterr().out
    )


@pytest.mark.parametrize(
    "database",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_the_release_logs_amounts_as_xcom_has_them_on_every_database(
    database: str,
    connections: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """MariaDB reads the reservation's amounts back from DECIMAL(65, 30): the log showed all 30 places."""
    import contextlib

    from tests.mariadb import mariadb_database_connection, mysql_uri
    from tests.warehouse_support import postgres_schema_connection

    with contextlib.ExitStack() as stack:
        if database == "postgres":
            uri = request.getfixturevalue("postgres_conn_uri")
            stack.enter_context(postgres_schema_connection(monkeypatch, "credits_reservations", uri))
        else:
            stack.enter_context(mariadb_database_connection(monkeypatch, "credits_reservations", mysql_uri()))
        connections.state.leadmagic.credits = Decimal(100)
        run = load_dag(MODULE, "example_shared_account_contacts").test(run_conf={"leads": 40})
        assert states(run)["release_credits"] == "success"
        (released,) = xcom(run, "release_credits")
    assert (released["amount"], released["balance_before"], released["spent"]) == ("44", "100", "40")
    out = capfd.readouterr().out
    assert "Reserved 44 credits on account 'leadmagic_shared' until" in out
    assert (
        "Released 44 credits on account 'leadmagic_shared' held by reserve_credits[-1]: "
        "balance 100 before, 60 after, spent 40" in out
    )


def test_credits_another_run_holds_are_not_spendable(
    connections: SandboxServer, reservations: ReservationStore, capfd: pytest.CaptureFixture[str]
) -> None:
    connections.state.leadmagic.credits = Decimal(100)
    hold(reservations, 90)
    run = load_dag(MODULE, "example_shared_account_contacts").test(run_conf={"leads": 20})
    assert states(run) == {
        "count_leads": "success",
        "reserve_credits": "failed",
        "enrich": "upstream_failed",
        "release_credits": "upstream_failed",
    }
    assert (
        "need 22 (estimated cost 20 + margin 2), available 100 (90 of it held by 1 other reservation, "
        "10 free), short by 12." in capfd.readouterr().out
    )
    assert connections.state.requests_for("leadmagic", "/v1/people/email-finder") == []
    assert [r.holder.dag_id for r in reservations.active("leadmagic_shared")] == ["another_dag"]


def test_the_deferrable_sensor_takes_credits_another_run_gives_back(
    connections: SandboxServer, reservations: ReservationStore
) -> None:
    """The other run's reservation expires (as a killed run's would): the waiting sensor's trigger gets it."""
    connections.state.leadmagic.credits = Decimal(100)
    hold(reservations, 90, ttl=3)
    run = load_dag(MODULE, "example_shared_account_companies").test(run_conf={"leads": 20})
    assert states(run) == {
        "count_leads": "success",
        "reserve_credits": "success",
        "enrich": "success",
        "release_credits": "success",
    }
    decision = xcom(run, "reserve_credits", "credit_preflight")
    assert decision["reservation"]["amount"] == "22"
    assert decision["reserved_by_others"] == "0"
    assert [row[:3] for row in usage_rows(reservations)] == [
        ("another_dag", "reserve_credits", "expired"),
        ("example_shared_account_companies", "reserve_credits", "released"),
    ]
    assert connections.state.leadmagic.credits == 80


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_poke_and_reschedule_sensors_retry_the_reservation(
    mode: str, connections: SandboxServer, reservations: ReservationStore
) -> None:
    """Not deferrable: each poke tries the reservation again, and takes it once the other run's expires."""
    connections.state.leadmagic.credits = Decimal(100)
    hold(reservations, 90, ttl=2)
    dag_id = f"example_shared_account_companies_{mode}"
    run = load_dag(MODULE, dag_id).test(run_conf={"leads": 20})
    assert states(run) == {
        "count_leads": "success",
        "reserve_credits": "success",
        "enrich": "success",
        "release_credits": "success",
    }
    assert xcom(run, "reserve_credits", "credit_preflight")["reservation"]["amount"] == "22"
    assert [row[:3] for row in usage_rows(reservations)] == [
        ("another_dag", "reserve_credits", "expired"),
        (dag_id, "reserve_credits", "released"),
    ]


def test_no_key_reaches_the_reservation_tables(
    canary_connections: SandboxServer, reservations: ReservationStore
) -> None:
    from tests.conftest import CANARY

    canary_connections.state.leadmagic.credits = Decimal(100)
    run = load_dag(MODULE, "example_shared_account_contacts").test(run_conf={"leads": 2})
    assert states(run)["release_credits"] == "success"
    for table in ("credit_reservations", "credit_reservations_accounts", "credit_usage"):
        rows = reservations.hook.get_records(f"SELECT * FROM {table}")
        assert rows
        assert CANARY not in repr(rows)
    assert CANARY not in repr(xcom(run, "reserve_credits", "credit_preflight"))
    assert CANARY not in repr(xcom(run, "release_credits"))


MAPPED = "example_mapped_reservations"


def test_mapped_shards_reserve_what_fits_and_each_release_finds_its_own_in_the_group(
    connections: SandboxServer, reservations: ReservationStore
) -> None:
    """``reserved_by="reserve"`` inside the group ``shard`` is ``shard.reserve``, of the same shard."""
    connections.state.leadmagic.credits = Decimal(12)  # 5 leads x 1.1 = 5.5 a shard: two of three fit
    run = load_dag(MAPPED, MAPPED).test(run_conf={"shards": 3, "leads": 5})
    shards = sorted((ti.task_id, str(ti.state)) for ti in run.get_task_instances() if ti.map_index >= 0)
    assert shards == sorted(
        [("shard.reserve", "success")] * 2
        + [("shard.reserve", "skipped")]
        + [("shard.enrich", "success")] * 2
        + [("shard.enrich", "skipped")]
        + [("shard.release", "success")] * 2
        + [("shard.release", "skipped")]
    )
    assert connections.state.leadmagic.credits == 2
    assert reservations.active("leadmagic_shared") == []
    assert sorted(r[1:4] for r in usage_rows(reservations)) == [("shard.reserve", "released", "5.5")] * 2


def test_a_release_naming_no_task_fails_instead_of_releasing_nothing(
    connections: SandboxServer, reservations: ReservationStore
) -> None:
    """A misnamed ``reserved_by`` used to succeed, release nothing and leave the credits held."""
    from airflow_credits_provider.errors import UnknownReservingTaskError

    connections.state.leadmagic.credits = Decimal(100)
    dag = load_dag(MAPPED, MAPPED)
    release = dag.get_task("shard.release")
    release.reserved_by = "reserv"
    with pytest.raises(
        UnknownReservingTaskError,
        match=r"reserved_by names 'reserv', which is no task of DAG 'example_mapped_reservations' "
        r"\(this task is in group 'shard': its tasks are 'shard.<task_id>'\)",
    ):
        release._reserving_task_ids()
    run = dag.test(run_conf={"shards": 2, "leads": 1})
    failed = sorted(str(ti.state) for ti in run.get_task_instances() if ti.task_id == "shard.release")
    assert failed == ["failed", "failed"]  # not a silent success
    assert len(reservations.active("leadmagic_shared")) == 2  # still held: the failed release says so
