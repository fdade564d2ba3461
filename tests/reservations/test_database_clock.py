"""
One clock for every machine: reservers whose own clocks are wrong, in real processes under libfaketime.

Each reserver here is a fresh Python process; the skewed ones run under ``faketime`` (Debian's
libfaketime), which moves the process's own clock only: the reservation database keeps the true time.
TTLs and budget periods must be judged on the database's clock, so a worker five minutes ahead does not
expire another worker's reservation early, one five minutes behind does not keep an expired one alive,
and one that thinks the current period has not started yet still charges it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from tests.conftest import subprocess_env
from tests.reservations.conftest import RESERVATION_DB

pytestmark = pytest.mark.integration

RESERVE = """
import json, sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from airflow_credits_provider.models import CreditBalance
from airflow_credits_provider.reservations import Holder, ReservationStore
from airflow_credits_provider.sql.connections import sql_hook_for

table, usage, holder, amount, ttl, budget, conn_id = sys.argv[1:8]
store = ReservationStore(sql_hook_for(conn_id), table=table, usage_table=usage)
result = store.reserve(
    account="clocked",
    credit_conn_id="leadmagic_default",
    holder=Holder("clock", holder, "reserve"),
    amount_for=lambda _b: Decimal(amount),
    fetch_balance=lambda: CreditBalance(
        vendor="leadmagic", available=Decimal(100), fetched_at=datetime.now(timezone.utc)
    ),
    ttl=timedelta(seconds=float(ttl)),
    budget=budget or None,
)
store.close()
print(json.dumps({
    "own_clock": datetime.now(timezone.utc).isoformat(),
    "reserved": result.reservation is not None,
    "reserved_at": result.reservation.reserved_at.isoformat() if result.reservation else None,
    "expired": list(result.expired),
    "period_start": result.budget.period_start.isoformat() if result.budget else None,
}))
"""


def _faketime() -> str:
    found = shutil.which("faketime")
    if found:
        return found
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(
            "CI needs Debian's faketime (apt-get install faketime; .ci/run installs it)", pytrace=False
        )
    pytest.skip("Debian's faketime is not installed (apt-get install faketime)")


class Reserver:
    """Reserves in a new process whose clock is ``offset`` seconds off (0: the true clock)."""

    def __init__(self, table: str, usage_table: str) -> None:
        self.table, self.usage_table = table, usage_table

    def __call__(
        self, holder: str, amount: int, *, offset: int = 0, ttl: float = 600, budget: str = ""
    ) -> dict[str, Any]:
        command = [
            sys.executable,
            "-c",
            RESERVE,
            self.table,
            self.usage_table,
            holder,
            str(amount),
            str(ttl),
            budget,
            RESERVATION_DB,
        ]
        if offset:
            command = [_faketime(), "-f", f"{offset:+d}s", *command]
        done = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        skew = (datetime.fromisoformat(result["own_clock"]) - datetime.now(timezone.utc)).total_seconds()
        assert abs(skew - offset) < 30, f"the process's clock is {skew:.0f}s off, not {offset}s"
        return result


@pytest.fixture
def reserve(reservation_tables: dict[str, str]) -> Reserver:
    """A reserver on this test's reservation tables."""
    return Reserver(reservation_tables["table"], reservation_tables["usage_table"])


@pytest.mark.parametrize("reservation_tables", ["postgres", "mariadb"], indirect=True)
def test_a_worker_with_a_fast_clock_does_not_expire_a_reservation_early(
    reserve: Reserver,
) -> None:
    assert reserve("first", 60, ttl=120)["reserved"]
    ahead = reserve("ahead", 60, offset=300)  # its clock says the first reservation expired 3 min ago
    assert ahead["expired"] == []
    assert not ahead["reserved"]  # 40 free: the first still holds 60


@pytest.mark.parametrize("reservation_tables", ["postgres", "mariadb"], indirect=True)
def test_a_worker_with_a_slow_clock_sees_an_expired_reservation_expired(
    reserve: Reserver,
) -> None:
    assert reserve("first", 60, ttl=2)["reserved"]
    time.sleep(3)
    behind = reserve("behind", 60, offset=-300)  # its clock says the first has 5 more minutes
    assert len(behind["expired"]) == 1
    assert behind["reserved"]


@pytest.mark.parametrize("reservation_tables", ["postgres", "mariadb"], indirect=True)
def test_a_worker_whose_clock_is_before_the_period_still_charges_the_current_one(
    reserve: Reserver,
) -> None:
    from airflow_credits_provider.budgets import Budget
    from airflow_credits_provider.reservations import ReservationStore
    from airflow_credits_provider.sql.connections import sql_hook_for

    now = datetime.now(timezone.utc)
    if (now.hour, now.minute) < (0, 10) or (now.hour, now.minute) > (23, 50):
        pytest.skip("too close to midnight UTC to tell the periods apart")
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # Five minutes before today's period began, by the worker's clock.
    offset = -int((now - today).total_seconds()) - 300
    store = ReservationStore(
        sql_hook_for(RESERVATION_DB), table=reserve.table, usage_table=reserve.usage_table
    )
    store.budgets.set([Budget.parse(name="daily", account="clocked", cap=100, period="day")])
    store.close()
    early = reserve("early", 30, offset=offset, budget="daily")
    assert early["reserved"]
    assert datetime.fromisoformat(early["period_start"]) == today
    assert datetime.fromisoformat(early["reserved_at"]).date() == today.date()
