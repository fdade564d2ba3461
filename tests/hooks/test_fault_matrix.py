"""
Every vendor x every fault kind -> the right exception or a successful retry, over real HTTP.

Each case runs through the sync hook call and the async one (the trigger's path), and asserts the
requests the sandbox received.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from airflow_credits_provider import errors
from airflow_credits_provider.hooks.leadmagic import LeadMagicHook
from airflow_credits_provider.hooks.localleads import LocalLeadsHook
from airflow_credits_provider.hooks.truemail import TrueMailHook

if TYPE_CHECKING:
    from airflow_credits_provider.hooks.base import CreditApiHook
    from airflow_credits_provider.sandbox import SandboxServer

HOOKS: dict[str, type[CreditApiHook]] = {
    "leadmagic": LeadMagicHook,
    "localleads": LocalLeadsHook,
    "truemail": TrueMailHook,
}
PATHS = {"leadmagic": "/v1/credits", "localleads": "/api/v1/credits/balance", "truemail": "/v1/usage"}
EXPECTED_AVAILABLE = {"leadmagic": Decimal("15432.5"), "localleads": Decimal(82), "truemail": Decimal(45230)}


@dataclass
class Case:
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    error: type[Exception] | None = None
    requests: int = 1
    message: str = ""
    hook_kwargs: dict[str, Any] = field(default_factory=dict)


CASES = {
    "401": Case("status", {"status": 401}, errors.AuthenticationError, 1, "rejected the API key"),
    "402": Case("status", {"status": 402}, errors.InsufficientCreditsError, 1, "lack of credits"),
    "403": Case("status", {"status": 403}, errors.PermissionDeniedError, 1, "denied access"),
    "404": Case("status", {"status": 404}, errors.NotFoundError, 1, "Check the connection's host"),
    "400": Case("status", {"status": 400}, errors.InvalidRequestError, 1, "rejected the request"),
    "422": Case("status", {"status": 422}, errors.InvalidRequestError, 1, "could not process"),
    "500-always": Case(
        "status", {"status": 500, "times": -1}, errors.VendorUnavailableError, 3, "Gave up after 3 attempts"
    ),
    "502-always": Case(
        "status", {"status": 502, "times": -1}, errors.VendorUnavailableError, 3, "server error"
    ),
    "503-once": Case("status", {"status": 503}, None, 2),
    "429-always": Case("rate_limit", {"times": -1}, errors.RateLimitedError, 3, "rate-limited"),
    "429-once-retry-after": Case("rate_limit", {"retry_after": "0"}, None, 2),
    "429-retry-after-capped": Case(
        "rate_limit", {"times": -1, "retry_after": "120"}, errors.RateLimitedError, 3
    ),
    "slow-always": Case(
        "slow",
        {"delay": 0.6, "times": -1},
        errors.VendorTimeoutError,
        3,
        "did not answer within 0.2s",
        {"timeout": 0.2},
    ),
    "slow-once": Case("slow", {"delay": 0.6}, None, 2, "", {"timeout": 0.2}),
    "drop-always": Case("drop", {"times": -1}, errors.VendorUnreachableError, 3, "Could not get an answer"),
    "drop-once": Case("drop", {}, None, 2),
    "cut-always": Case("cut", {"times": -1}, errors.VendorUnreachableError, 3, "Could not get an answer"),
    "truncated": Case("truncated", {}, errors.BadResponseError, 1, "not valid JSON"),
    "html-502": Case("html", {"status": 502, "times": -1}, errors.VendorUnavailableError, 3, "HTML page"),
    "html-200": Case("html", {"status": 200}, errors.BadResponseError, 1, "HTML page"),
    "wrong-types": Case("wrong_types", {}, errors.BadResponseError, 1, "unexpected payload"),
}


def _run(hook: CreditApiHook, mode: str) -> Any:
    if mode == "sync":
        return hook.get_balance()
    return asyncio.run(hook.aget_balance())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("case_id", list(CASES))
@pytest.mark.parametrize("vendor", list(HOOKS))
def test_fault(connections: SandboxServer, vendor: str, case_id: str, mode: str) -> None:
    case = CASES[case_id]
    connections.state.inject(case.kind, vendor, **case.options)
    hook = HOOKS[vendor](**case.hook_kwargs)
    if case.error is None:
        balance = _run(hook, mode)
        assert balance.available == EXPECTED_AVAILABLE[vendor]
    else:
        with pytest.raises(case.error) as info:
            _run(hook, mode)
        exc = info.value
        assert isinstance(exc, errors.CreditApiError)
        assert case.message in str(exc)
        assert exc.vendor == hook.vendor_class.key
        assert exc.vendor_name == hook.vendor_class.display_name
        assert (exc.method, exc.path) == ("GET", PATHS[vendor])
        assert f"connection '{vendor}_default'" in str(exc)
        if case.kind in ("status", "rate_limit"):
            assert exc.status_code == case.options.get("status", 429)
        if case_id == "429-retry-after-capped":
            assert isinstance(exc, errors.RateLimitedError)
            assert exc.retry_after == 120
        if case_id == "429-always":
            assert isinstance(exc, errors.RateLimitedError)
            assert exc.retry_after is None
        assert len(str(exc)) < 600  # a message, never a dumped body
    received = connections.state.requests_for(vendor)
    assert len(received) == case.requests
    assert {(r.method, r.path) for r in received} == {("GET", PATHS[vendor])}
