"""Retry policy: what is retried, how long it waits, and what is never sent twice."""

from __future__ import annotations

import email.utils
import logging
import time
from typing import TYPE_CHECKING

import pytest

from airflow_credits_provider import errors
from airflow_credits_provider.client.transport import CreditApiClient, parse_retry_after
from airflow_credits_provider.hooks.leadmagic import LeadMagicHook
from airflow_credits_provider.hooks.truemail import TrueMailHook
from tests.conftest import set_connection

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer


@pytest.fixture(autouse=True)
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits between retries, recorded instead of spent."""
    waits: list[float] = []
    monkeypatch.setattr(CreditApiClient, "sleep", staticmethod(waits.append))
    return waits


def _waits(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage().rsplit(" in ", 1)[1] for r in caplog.records if "retry " in r.getMessage()]


def test_retry_after_is_honoured(
    monkeypatch: pytest.MonkeyPatch,
    sandbox: SandboxServer,
    caplog: pytest.LogCaptureFixture,
    slept: list[float],
) -> None:
    set_connection(monkeypatch, "truemail_default", sandbox, "truemail", extra={"max_retry_wait": 600})
    sandbox.state.inject("rate_limit", "truemail", retry_after="120")
    caplog.set_level(logging.WARNING, logger="airflow_credits_provider")
    assert TrueMailHook().get_balance().plan == "premium"
    assert slept == [120.0]
    assert _waits(caplog) == ["120.00s"]
    assert len(sandbox.state.requests_for("truemail")) == 2


def test_retry_after_is_capped(
    monkeypatch: pytest.MonkeyPatch,
    sandbox: SandboxServer,
    caplog: pytest.LogCaptureFixture,
    slept: list[float],
) -> None:
    set_connection(monkeypatch, "truemail_default", sandbox, "truemail", extra={"max_retry_wait": 0.05})
    sandbox.state.inject("rate_limit", "truemail", retry_after="3600")
    caplog.set_level(logging.WARNING, logger="airflow_credits_provider")
    TrueMailHook().get_balance()
    assert _waits(caplog) == ["0.05s"]
    assert slept == [0.05]


def test_backoff_grows_and_stays_bounded(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, slept: list[float]
) -> None:
    set_connection(
        monkeypatch,
        "truemail_default",
        sandbox,
        "truemail",
        extra={"max_retries": 4, "retry_initial_wait": 1, "max_retry_wait": 6},
    )
    sandbox.state.inject("status", "truemail", status=503, times=-1)
    with pytest.raises(errors.VendorUnavailableError, match="Gave up after 5 attempts"):
        TrueMailHook().get_balance()
    # Exponential from 1 s (1, 2, 4, 8) plus up to 1 s of jitter, capped at 6 s.
    assert len(slept) == 4
    for wait, low in zip(slept, (1, 2, 4, 6), strict=True):
        assert low <= wait <= min(low + 1, 6)
    assert slept[-1] == 6
    assert len(sandbox.state.requests_for("truemail")) == 5


def test_zero_retries_means_one_request(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> None:
    set_connection(monkeypatch, "truemail_default", sandbox, "truemail", extra={"max_retries": 0})
    sandbox.state.inject("status", "truemail", status=503, times=-1)
    with pytest.raises(errors.VendorUnavailableError) as info:
        TrueMailHook().get_balance()
    assert "Gave up" not in str(info.value)
    assert len(sandbox.state.requests_for("truemail")) == 1


def test_charging_post_is_not_resent_after_5xx_or_drop(connections: SandboxServer) -> None:
    connections.state.inject("status", "leadmagic", status=503, path="/v1/people")
    hook = LeadMagicHook()
    with pytest.raises(errors.VendorUnavailableError):
        hook.request("POST", "/v1/people/email-finder", json={"domain": "example.com"})
    connections.state.inject("drop", "leadmagic", path="/v1/people")
    with pytest.raises(errors.VendorUnreachableError):
        hook.request("POST", "/v1/people/email-finder", json={"domain": "example.com"})
    assert len(connections.state.requests_for("leadmagic", "/v1/people/email-finder")) == 2


def test_charging_post_is_retried_after_429(connections: SandboxServer) -> None:
    connections.state.inject("rate_limit", "leadmagic", path="/v1/people", retry_after="0")
    result = LeadMagicHook().request("POST", "/v1/people/email-finder", json={"domain": "example.com"})
    assert result["credits_consumed"] == 1
    assert len(connections.state.requests_for("leadmagic", "/v1/people/email-finder")) == 2


def test_explicitly_idempotent_post_is_retried(connections: SandboxServer) -> None:
    connections.state.inject("status", "leadmagic", status=502, path="/v1/people")
    LeadMagicHook().request("POST", "/v1/people/email-validation", json={"email": "a@b.c"}, idempotent=True)
    assert len(connections.state.requests_for("leadmagic", "/v1/people/email-validation")) == 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0", 0.0), ("1.5", 1.5), (None, None), ("", None), ("soon", None), ("-3", 0.0)],
)
def test_parse_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    parsed = parse_retry_after(when)
    assert parsed is not None
    assert 25 <= parsed <= 31
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert parse_retry_after(past) == 0.0
