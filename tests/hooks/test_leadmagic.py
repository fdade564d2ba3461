"""LeadMagicHook over real HTTP against the sandbox."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from airflow_credits_provider.errors import AuthenticationError, InsufficientCreditsError, InvalidRequestError
from airflow_credits_provider.hooks.leadmagic import LeadMagicHook
from airflow_credits_provider.sandbox import DEFAULT_KEYS

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer


def test_balance_uses_liquid_credits(connections: SandboxServer) -> None:
    state = connections.state
    state.leadmagic.credits = Decimal("1200.5")
    state.leadmagic.credits_frozen = Decimal(200)
    state.leadmagic.freeze_message = "Payment overdue"
    balance = LeadMagicHook().get_balance()
    assert balance.available == Decimal("1000.5")
    assert balance.total == Decimal("1200.5")
    assert balance.locked == Decimal(200)
    assert balance.locked_reason == "Payment overdue"
    [request] = state.requests_for("leadmagic")
    assert (request.method, request.path, request.query) == ("GET", "/v1/credits", {})
    assert request.headers["x-api-key"] == DEFAULT_KEYS["leadmagic"]
    assert "authorization" not in request.headers
    assert request.headers["user-agent"] == "airflow-credits-provider"


def test_minimal_documented_body(connections: SandboxServer) -> None:
    connections.state.leadmagic.rich_body = False
    assert LeadMagicHook().get_balance().available == Decimal("15432.5")


def test_refresh_and_health(connections: SandboxServer) -> None:
    hook = LeadMagicHook()
    assert hook.refresh_balance().available == Decimal("15432.5")
    assert hook.check_health()["authenticated"] is True
    paths = [(r.method, r.path) for r in connections.state.requests_for("leadmagic")]
    assert paths == [("POST", "/v1/credits/refresh"), ("GET", "/v1/credits/health")]


def test_request_records_credits_remaining_header(connections: SandboxServer) -> None:
    connections.state.leadmagic.credits = Decimal(3)
    hook = LeadMagicHook()
    assert hook.last_known_balance is None
    found = hook.request(
        "POST", "/v1/people/email-finder", json={"first_name": "Ada", "domain": "example.com"}
    )
    assert found["status"] == "valid"
    assert hook.last_known_balance == Decimal(2)
    assert hook.last_credits_cost == Decimal(1)
    hook.request("POST", "/v1/people/email-finder", json={"first_name": "Ada", "domain": "unknown.example"})
    assert hook.last_known_balance == Decimal(2)  # failures are free
    assert hook.last_credits_cost == Decimal(0)
    [first, _] = connections.state.requests_for("leadmagic")
    assert first.path == "/v1/people/email-finder"


def test_request_402_raises_and_still_records_header(connections: SandboxServer) -> None:
    connections.state.leadmagic.credits = Decimal("0.5")
    hook = LeadMagicHook()
    with pytest.raises(InsufficientCreditsError) as info:
        hook.request("POST", "/v1/people/email-finder", json={"domain": "example.com"})
    assert info.value.status_code == 402
    assert info.value.error_code == "insufficient_credits"
    assert info.value.request_id  # from the envelope's meta
    assert "CreditPreflightSensor" in str(info.value)
    assert hook.last_known_balance == Decimal("0.5")
    assert len(connections.state.requests_for("leadmagic")) == 1  # 402 is never retried


def test_request_400_validation(connections: SandboxServer) -> None:
    with pytest.raises(InvalidRequestError, match="Field 'domain' is required"):
        LeadMagicHook().request("POST", "/v1/people/email-finder", json={})


def test_missing_key_header_is_reported(connections: SandboxServer) -> None:
    connections.state.set_key("leadmagic", "another-key")
    with pytest.raises(AuthenticationError, match="invalid_api_key") as info:
        LeadMagicHook().get_balance()
    assert info.value.status_code == 401
    assert info.value.vendor == "leadmagic"
    assert info.value.vendor_name == "LeadMagic"
    assert info.value.path == "/v1/credits"


def test_rfc9457_errors_are_read(connections: SandboxServer) -> None:
    connections.state.leadmagic.error_style = "rfc9457"
    connections.state.set_key("leadmagic", "another-key")
    with pytest.raises(AuthenticationError, match="Invalid API key") as info:
        LeadMagicHook().get_balance()
    assert info.value.error_code == "invalid_api_key"
    assert info.value.request_id is not None


def test_test_connection_uses_health_then_balance(connections: SandboxServer) -> None:
    assert LeadMagicHook().test_connection() == (True, "LeadMagic: 15432.5 credits available")
    paths = [r.path for r in connections.state.requests_for("leadmagic")]
    assert paths == ["/v1/credits/health", "/v1/credits"]
    connections.state.set_key("leadmagic", "rotated")
    ok, message = LeadMagicHook().test_connection()
    assert ok is False
    assert "rejected the API key" in message
