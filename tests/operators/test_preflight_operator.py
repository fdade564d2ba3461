"""CreditPreflightOperator at the task level (the DAG-level runs are in tests/test_example_dags.py)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

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
    with pytest.raises(ValueError, match="'fail' or 'skip'"):
        CreditPreflightOperator(task_id="t", credit_conn_id="c", estimated_cost=1, on_insufficient="warn")


def test_templated_fields() -> None:
    assert set(CreditPreflightOperator.template_fields) >= {
        "credit_conn_id",
        "estimated_cost",
        "units",
        "margin",
    }
