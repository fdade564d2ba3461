"""TrueMailHook over real HTTP against the sandbox."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from airflow_credits_provider.errors import PermissionDeniedError, ValidationTypeUnavailableError
from airflow_credits_provider.hooks.truemail import TrueMailHook

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer


def test_balance_and_prices(connections: SandboxServer) -> None:
    hook = TrueMailHook()
    balance = hook.get_balance()
    assert balance.available == Decimal(45230)
    assert balance.plan == "premium"
    assert hook.get_unit_price("smtp", balance).credits == Decimal(10)
    assert set(hook.get_validation_types()) == {"mx", "smtp"}
    assert len(connections.state.requests_for("truemail", "/v1/usage")) == 2


def test_unavailable_type_fails_with_upgrade_text(connections: SandboxServer) -> None:
    connections.state.truemail.plan = "starter"
    connections.state.truemail.validation_types["smtp"] = {
        "credits": 10,
        "available": False,
        "upgrade_required": "Premium subscription required",
    }
    with pytest.raises(ValidationTypeUnavailableError, match="Premium subscription required") as info:
        TrueMailHook().get_unit_price("smtp")
    assert isinstance(info.value, PermissionDeniedError)
    assert TrueMailHook().get_unit_price("mx").credits == Decimal(1)


def test_403_ip_not_allowed(connections: SandboxServer) -> None:
    connections.state.inject("status", "truemail", status=403)
    with pytest.raises(PermissionDeniedError, match="IP address not allowed"):
        TrueMailHook().get_balance()
    assert len(connections.state.requests_for("truemail")) == 1
