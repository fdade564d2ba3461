"""CreditPreflightOperator at the task level (the DAG-level runs are in tests/test_example_dags.py)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from airflow_credits_provider.errors import CreditPreflightFailed
from airflow_credits_provider.operators.preflight import XCOM_KEY, CreditPreflightOperator
from tests.conftest import CANARY
from tests.sensors.test_preflight_sensor import _context

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer


def test_decision_record_never_holds_the_key(canary_connections: SandboxServer) -> None:
    for conn_id in ("leadmagic_default", "localleads_default", "truemail_default"):
        context = _context()
        op = CreditPreflightOperator(task_id="gate", credit_conn_id=conn_id, estimated_cost=1)
        record = op.execute(context)
        assert record == context["ti"].pushed[XCOM_KEY]
        assert record["passed"] is True
        assert CANARY not in json.dumps(record)


def test_failure_is_final_and_skip_skips(connections: SandboxServer) -> None:
    connections.state.truemail.total = Decimal(5)
    failing = CreditPreflightOperator(
        task_id="gate", credit_conn_id="truemail_default", units=1, validation_type="smtp"
    )
    with pytest.raises(CreditPreflightFailed) as info:
        failing.execute(_context())
    assert isinstance(info.value, AirflowFailException)  # fails without retries
    assert "need 10 (1 units x 10 credits (TrueMail price for 'smtp')), available 5, short by 5." in str(
        info.value
    )
    assert "Credits renew at" in str(info.value)
    skipping = CreditPreflightOperator(
        task_id="gate", credit_conn_id="truemail_default", estimated_cost=10, on_insufficient="skip"
    )
    with pytest.raises(AirflowSkipException, match="short by 5"):
        skipping.execute(_context())


def test_vendor_outage_is_left_to_task_retries(connections: SandboxServer) -> None:
    connections.state.inject("status", "leadmagic", status=503, times=-1)
    op = CreditPreflightOperator(task_id="gate", credit_conn_id="leadmagic_default", estimated_cost=1)
    with pytest.raises(Exception, match="had a server error") as info:
        op.execute(_context())
    assert not isinstance(info.value, AirflowFailException)  # retries can help here


def test_on_insufficient_is_validated() -> None:
    with pytest.raises(ValueError, match="'fail', 'skip' or 'partial'"):
        CreditPreflightOperator(task_id="t", credit_conn_id="c", estimated_cost=1, on_insufficient="warn")


def test_templated_fields() -> None:
    assert set(CreditPreflightOperator.template_fields) >= {
        "credit_conn_id",
        "estimated_cost",
        "units",
        "margin",
    }


@pytest.mark.parametrize(
    ("conn_id", "balance", "cost", "short_by"),
    [
        (
            "localleads_default",
            None,
            Decimal("82.000000000000000000000000000001"),
            "0.000000000000000000000000000001",
        ),
        ("leadmagic_default", Decimal(10**30), Decimal(10**30 + 1), "1"),
        ("leadmagic_default", Decimal(10**30), str(10**30) + ".5", "0.5"),
    ],
)
def test_a_shortfall_of_any_size_fails(
    connections: SandboxServer, conn_id: str, balance: Decimal | None, cost: object, short_by: str
) -> None:
    if balance is not None:
        connections.state.leadmagic.credits = balance
    context = _context()
    with pytest.raises(CreditPreflightFailed, match=f"short by {short_by}\\.") as info:
        CreditPreflightOperator(task_id="gate", credit_conn_id=conn_id, estimated_cost=cost).execute(context)
    record = context["ti"].pushed[XCOM_KEY]
    assert record["message"] == str(info.value)  # the reason travels with the decision
    assert record["passed"] is False
    assert record["shortfall"] == short_by  # exact in XCom too
    assert Decimal(record["required"]) - Decimal(record["available"]) == Decimal(short_by)


def test_exactly_enough_still_passes_at_any_precision(connections: SandboxServer) -> None:
    record = CreditPreflightOperator(
        task_id="gate",
        credit_conn_id="localleads_default",
        estimated_cost=Decimal("81.999999999999999999999999999999"),
        margin=Decimal("0.000000000000000000000000000001"),
    ).execute(_context())
    assert record["passed"] is True
    assert record["required"] == "82"


@pytest.mark.parametrize(
    "cost",
    ["1e1000000", Decimal("1e999999"), "NaN", float("inf"), "-Infinity", "1e-50", "9" * 5000],
)
def test_absurd_estimates_fail_at_once_with_a_short_message(connections: SandboxServer, cost: object) -> None:
    with pytest.raises(CreditPreflightFailed) as info:
        CreditPreflightOperator(
            task_id="gate", credit_conn_id="leadmagic_default", estimated_cost=cost
        ).execute(_context())
    message = str(info.value)
    assert message.startswith("Task 'gate': estimated_cost ")
    assert len(message) < 300
    assert isinstance(info.value, AirflowFailException)  # no retries


def test_a_huge_product_of_units_and_price_fails_clearly(connections: SandboxServer) -> None:
    with pytest.raises(
        CreditPreflightFailed, match="units x unit_cost comes to 1e\\+60, larger than"
    ) as info:
        CreditPreflightOperator(
            task_id="gate", credit_conn_id="leadmagic_default", units="1e30", unit_cost="1e30"
        ).execute(_context())
    assert len(str(info.value)) < 300


def test_partial_run_at_the_vendors_unit_price(connections: SandboxServer) -> None:
    """TrueMail prices 'smtp' at 10 credits: 45,230 available (1,500 locked) cover 4,523 of 10,000."""
    context = _context()
    op = CreditPreflightOperator(
        task_id="gate",
        credit_conn_id="truemail_default",
        units=10000,
        validation_type="smtp",
        on_insufficient="partial",
    )
    record = op.execute(context)
    assert (record["affordable_units"], record["deferred_units"]) == (4523, 5477)
    assert record["basis"] == "4523 units x 10 credits (TrueMail price for 'smtp')"
    assert (context["ti"].pushed["affordable_units"], context["ti"].pushed["deferred_units"]) == (4523, 5477)


def test_partial_below_min_units_fails_or_skips(connections: SandboxServer) -> None:
    connections.state.leadmagic.credits = Decimal(4)
    args = {"task_id": "gate", "credit_conn_id": "leadmagic_default", "units": "20", "unit_cost": 1}
    with pytest.raises(
        CreditPreflightFailed, match=r"The credits cover 4 of 20 units, fewer than min_units \(5\)"
    ):
        CreditPreflightOperator(**args, on_insufficient="partial", min_units=5).execute(_context())
    with pytest.raises(AirflowSkipException, match="fewer than min_units"):
        CreditPreflightOperator(
            **args, on_insufficient="partial", min_units=5, below_min_units="skip"
        ).execute(_context())
    with pytest.raises(
        CreditPreflightFailed, match="of 20 units, a job smaller than min_units .50. runs only whole"
    ):
        CreditPreflightOperator(**args, on_insufficient="partial", min_units=50).execute(_context())


def test_partial_arguments_are_checked_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="pass units and unit_cost"):
        CreditPreflightOperator(task_id="t", credit_conn_id="c", estimated_cost=1, on_insufficient="partial")
    with pytest.raises(ValueError, match="units must be a whole number of units for a partial run, got 2.5"):
        CreditPreflightOperator(
            task_id="t", credit_conn_id="c", units="2.5", unit_cost=1, on_insufficient="partial"
        )
    with pytest.raises(ValueError, match="min_units must be a whole number"):
        CreditPreflightOperator(
            task_id="t", credit_conn_id="c", units=5, unit_cost=1, on_insufficient="partial", min_units=2.5
        )
    with pytest.raises(ValueError, match="apply to on_insufficient='partial' only"):
        CreditPreflightOperator(task_id="t", credit_conn_id="c", units=5, unit_cost=1, min_units=3)
    with pytest.raises(ValueError, match=r"Task 't': below_min_units must be 'fail' or 'skip', got 'wait'"):
        CreditPreflightOperator(
            task_id="t",
            credit_conn_id="c",
            units=5,
            unit_cost=1,
            on_insufficient="partial",
            below_min_units="wait",
        )
    templated = CreditPreflightOperator(
        task_id="t",
        credit_conn_id="c",
        units=5,
        unit_cost=1,
        on_insufficient="partial",
        min_units="{{ params.m }}",
    )
    assert templated.min_units == "{{ params.m }}"
    assert "min_units" in CreditPreflightOperator.template_fields
