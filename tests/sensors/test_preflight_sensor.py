"""CreditPreflightSensor's decisions at the task level: deferral, reset-aware waiting, soft_fail, errors."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_credits_provider.errors import CreditPreflightFailed
from airflow_credits_provider.operators.preflight import XCOM_KEY
from airflow_credits_provider.sensors.preflight import CreditPreflightSensor
from tests.conftest import CANARY

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer


class _TaskInstance:
    """The two things the sensor asks of a task instance: XCom pushes and the first reschedule."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}
        self.push_count = 0

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value
        self.push_count += 1

    def get_first_reschedule_date(self, context: Any) -> None:
        return None


def _context() -> dict[str, Any]:
    return {"ti": _TaskInstance()}


def _sensor(**kwargs: Any) -> CreditPreflightSensor:
    defaults: dict[str, Any] = {
        "task_id": "gate",
        "credit_conn_id": "leadmagic_default",
        "estimated_cost": 100,
    }
    return CreditPreflightSensor(**{**defaults, **kwargs})


def test_enough_credits_returns_without_deferring(connections: SandboxServer) -> None:
    context = _context()
    result = _sensor(deferrable=True).execute(context)
    assert result["passed"] is True
    assert context["ti"].pushed[XCOM_KEY] == result


def test_short_defers_with_an_absolute_deadline_and_no_key(canary_connections: SandboxServer) -> None:
    canary_connections.state.leadmagic.credits = Decimal(50)
    before = pendulum.now("UTC")
    with pytest.raises(TaskDeferred) as info:
        _sensor(deferrable=True, timeout=3600, poke_interval=30, margin=10).execute(_context())
    deferred = info.value
    path, kwargs = deferred.trigger.serialize()
    assert path.endswith("CreditBalanceTrigger")
    assert kwargs["required"] == "110"
    assert kwargs["poll_interval"] == 30.0
    deadline = pendulum.parse(kwargs["deadline"])
    assert before.add(seconds=3600) <= deadline <= pendulum.now("UTC").add(seconds=3600)
    assert kwargs["not_before"] is None
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout is not None
    assert deferred.timeout.total_seconds() == 3600
    assert CANARY not in json.dumps(kwargs) + json.dumps(deferred.kwargs or {})


def test_reset_aware_defers_until_the_renewal(connections: SandboxServer) -> None:
    state = connections.state
    state.localleads.used = Decimal(120)
    with pytest.raises(TaskDeferred) as info:
        _sensor(
            credit_conn_id="localleads_default", deferrable=True, wait_for_reset=True, timeout=40 * 24 * 3600
        ).execute(_context())
    _, kwargs = info.value.trigger.serialize()
    expected = pendulum.now("UTC").start_of("month").add(months=1)
    assert pendulum.parse(kwargs["not_before"]) == expected


def test_renewal_that_will_not_cover_keeps_polling(connections: SandboxServer) -> None:
    connections.state.localleads.used = Decimal(120)
    with pytest.raises(TaskDeferred) as info:
        _sensor(
            credit_conn_id="localleads_default",
            estimated_cost=500,
            deferrable=True,
            wait_for_reset=True,
            timeout=40 * 24 * 3600,
        ).execute(_context())
    assert (
        info.value.trigger.serialize()[1]["not_before"] is None
    )  # 125 after renewal < 500: a top-up is needed


@pytest.mark.parametrize("deferrable", [True, False])
def test_renewal_after_the_deadline_fails_or_soft_fails_at_once(
    connections: SandboxServer, deferrable: bool
) -> None:
    connections.state.localleads.used = Decimal(120)
    kwargs: dict[str, Any] = {
        "credit_conn_id": "localleads_default",
        "wait_for_reset": True,
        "timeout": 60,
        "poke_interval": 0.05,
        "deferrable": deferrable,
    }
    with pytest.raises(CreditPreflightFailed, match="after this sensor's deadline") as info:
        _sensor(**kwargs).execute(_context())
    assert "CreditPreflightSensor" not in str(info.value)  # it is that sensor: no advice to use it
    with pytest.raises(AirflowSkipException):
        _sensor(soft_fail=True, **kwargs).execute(_context())
    assert len(connections.state.requests_for("localleads")) == 2


ESTIMATE = {"cost": "100", "margin": "0", "basis": "estimated cost 100"}


def test_execute_complete_events(connections: SandboxServer) -> None:
    sensor = _sensor(deferrable=True)
    balance = {
        "vendor": "leadmagic",
        "vendor_name": "LeadMagic",
        "available": "150",
        "fetched_at": "2026-11-21T00:00:00+00:00",
    }
    context = _context()
    event = {"status": "success", "balance": balance, "estimate": ESTIMATE}
    assert sensor.execute_complete(context, event)["available"] == "150"
    assert context["ti"].pushed[XCOM_KEY]["passed"] is True
    assert context["ti"].pushed[XCOM_KEY]["vendor_name"] == "LeadMagic"
    with pytest.raises(AirflowSensorTimeout, match="deadline"):
        sensor.execute_complete(_context(), {"status": "timeout", "message": "Still short at the deadline"})
    with pytest.raises(CreditPreflightFailed, match="rejected the API key"):
        sensor.execute_complete(_context(), {"status": "error", "message": "LeadMagic rejected the API key"})


def test_resuming_reuses_the_estimate_made_before_deferring(connections: SandboxServer) -> None:
    connections.state.leadmagic.credits = Decimal(50)
    calls: list[object] = []

    def cost(context: object) -> int:
        calls.append(context)
        return 100

    sensor = _sensor(deferrable=True, estimated_cost=cost, margin_percent=10)
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(_context())
    estimate = info.value.trigger.serialize()[1]["estimate"]
    assert estimate == {"cost": "100", "margin": "10", "basis": "estimated cost 100"}
    balance = {
        "vendor": "leadmagic",
        "vendor_name": "LeadMagic",
        "available": "200",
        "fetched_at": "2026-11-21T00:00:00+00:00",
    }
    event = {"status": "success", "balance": balance, "estimate": estimate}  # as the trigger sends it
    context = _context()
    decision = sensor.resume_execution("execute_complete", {"event": event}, context)
    assert len(calls) == 1  # the cost callable ran once, before deferring
    assert decision["required"] == "110"
    assert context["ti"].pushed[XCOM_KEY] == decision
    assert context["ti"].push_count == 1  # recorded once, as passed


def test_soft_fail_applies_to_trigger_timeouts(connections: SandboxServer) -> None:
    sensor = _sensor(deferrable=True, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        sensor.resume_execution(
            "execute_complete",
            {"event": {"status": "timeout", "message": "late"}},
            _context(),
        )


def test_poke_mode_fails_at_once_on_a_bad_key(connections: SandboxServer) -> None:
    connections.state.set_key("leadmagic", "rotated")
    with pytest.raises(CreditPreflightFailed, match="rejected the API key"):
        _sensor(mode="poke", poke_interval=0.05, timeout=5).execute(_context())
    with pytest.raises(AirflowSkipException):
        _sensor(mode="poke", poke_interval=0.05, timeout=5, soft_fail=True).execute(_context())


def test_deferrable_soft_fail_skips_on_a_bad_key_or_estimate(connections: SandboxServer) -> None:
    connections.state.set_key("leadmagic", "rotated")
    with pytest.raises(AirflowSkipException, match="rejected the API key"):
        _sensor(deferrable=True, soft_fail=True).execute(_context())
    connections.state.set_key("leadmagic", "lm_sandbox_0123456789abcdef")
    with pytest.raises(AirflowSkipException, match="must not be negative"):
        _sensor(deferrable=True, soft_fail=True, estimated_cost=-1).execute(_context())
    with pytest.raises(CreditPreflightFailed):
        _sensor(deferrable=True, estimated_cost=-1).execute(_context())


def test_poke_mode_times_out_like_airflows_sensors(connections: SandboxServer) -> None:
    connections.state.leadmagic.credits = Decimal(1)
    with pytest.raises(AirflowSensorTimeout, match="Sensor has timed out"):
        _sensor(mode="poke", poke_interval=0.05, timeout=0.3).execute(_context())
    with pytest.raises(AirflowSkipException):
        _sensor(mode="poke", poke_interval=0.05, timeout=0.3, soft_fail=True).execute(_context())


def test_poke_mode_waits_out_vendor_outages(connections: SandboxServer) -> None:
    connections.state.inject("status", "leadmagic", status=503, times=3)  # one check's retries
    result = _sensor(mode="poke", poke_interval=0.05, timeout=10).execute(_context())
    assert result["passed"] is True
    assert len(connections.state.requests_for("leadmagic")) == 4


def test_argument_validation() -> None:
    with pytest.raises(ValueError, match="exactly one of estimated_cost or units"):
        CreditPreflightSensor(task_id="t", credit_conn_id="c")
    with pytest.raises(ValueError, match="exactly one of estimated_cost or units"):
        CreditPreflightSensor(task_id="t", credit_conn_id="c", estimated_cost=1, units=1)
    with pytest.raises(ValueError, match="with units, pass unit_cost or validation_type"):
        CreditPreflightSensor(task_id="t", credit_conn_id="c", units=1)


def test_bad_estimate_fails_at_once_naming_the_task(connections: SandboxServer) -> None:
    with pytest.raises(
        CreditPreflightFailed, match="Task 'gate': estimated_cost must not be negative, got -3"
    ):
        _sensor(estimated_cost=-3, deferrable=True).execute(_context())


# -- partial runs --------------------------------------------------------------------------------------
def test_partial_poke_waits_below_min_units_then_passes_with_what_fits(connections: SandboxServer) -> None:
    connections.state.leadmagic.credits = Decimal(9)
    sensor = _sensor(
        estimated_cost=None, units=500, unit_cost=2, on_insufficient="partial", min_units=5, mode="poke"
    )
    context = _context()
    assert sensor.poke(context) is False  # 4 units fit: fewer than 5
    assert context["ti"].pushed["affordable_units"] == 0
    assert context["ti"].pushed["deferred_units"] == 500
    connections.state.leadmagic.credits = Decimal(301)
    done = sensor.poke(context)
    assert done.is_done is True
    assert (done.xcom_value["affordable_units"], done.xcom_value["deferred_units"]) == (150, 350)
    assert done.xcom_value["required"] == "300"
    assert (context["ti"].pushed["affordable_units"], context["ti"].pushed["deferred_units"]) == (150, 350)


def test_partial_deferral_waits_for_the_smallest_run_and_sizes_on_resume(connections: SandboxServer) -> None:
    """The trigger waits for min_units' cost; resuming sizes the run to the balance the trigger saw."""
    connections.state.leadmagic.credits = Decimal(3)
    sensor = _sensor(
        deferrable=True,
        estimated_cost=None,
        units=1000,
        unit_cost="0.5",
        margin_percent=10,
        on_insufficient="partial",
        min_units=10,
    )
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(_context())
    kwargs = info.value.trigger.serialize()[1]
    assert kwargs["required"] == "5.5"  # 10 units x 0.5 + 10 %
    assert kwargs["estimate"]["plan"] == {
        "units": 1000,
        "unit_cost": "0.5",
        "margin": "0",
        "margin_percent": "10",
        "min_units": 10,
        "source": "given",
    }
    balance = {
        "vendor": "leadmagic",
        "vendor_name": "LeadMagic",
        "available": "100",
        "fetched_at": "2026-11-21T00:00:00+00:00",
    }
    context = _context()
    event = {"status": "success", "balance": balance, "estimate": kwargs["estimate"]}
    decision = sensor.resume_execution("execute_complete", {"event": event}, context)
    assert (decision["affordable_units"], decision["deferred_units"]) == (181, 819)  # 181 x 0.55 = 99.55
    assert decision["required"] == "99.55"


def test_partial_needs_units_and_a_whole_min_units() -> None:
    with pytest.raises(ValueError, match="pass units and unit_cost"):
        _sensor(on_insufficient="partial")
    with pytest.raises(ValueError, match="min_units must be at least 1"):
        _sensor(estimated_cost=None, units=5, unit_cost=1, on_insufficient="partial", min_units=0)
    with pytest.raises(
        ValueError, match=r"Task 'gate': on_insufficient must be 'wait' or 'partial', got 'skip'"
    ):
        _sensor(on_insufficient="skip")
    with pytest.raises(ValueError, match="min_units applies to on_insufficient='partial' only"):
        _sensor(estimated_cost=None, units=5, unit_cost=1, min_units=3)
