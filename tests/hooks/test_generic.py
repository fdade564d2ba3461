"""GenericCreditHook: every preset against the sandbox, bad keys (HTTP 200 ones included), bad bodies."""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from airflow_credits_provider import errors
from airflow_credits_provider.hooks.generic import GenericCreditHook
from airflow_credits_provider.sandbox.state import PRESET_NAMES
from airflow_credits_provider.vendors.generic import PRESETS, CreditApiSpec
from tests.conftest import CANARY, FAST_EXTRA

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer

QUERY_KEYED = [name for name, spec in PRESETS.items() if spec.auth == "query"]


def _connect(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, preset: str, **extra: Any) -> str:
    conn_id = f"api_{preset}"
    conn = sandbox.connection(preset, **{**FAST_EXTRA, **extra})
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def test_every_preset_is_emulated() -> None:
    assert sorted(PRESETS) == sorted(PRESET_NAMES)
    assert len(PRESETS) == 12


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_balance(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, preset: str) -> None:
    sandbox.state.account(preset).credits = Decimal("4321")
    balance = GenericCreditHook(_connect(monkeypatch, sandbox, preset)).get_balance()
    assert balance.available == Decimal(4321)
    assert balance.vendor == preset
    [request] = sandbox.state.requests_for(preset)
    spec = PRESETS[preset]
    assert (request.method, request.path) == (spec.method, spec.path)
    if spec.auth == "query":
        assert request.query[spec.auth_name] == f"{preset}_sandbox_key_0123456789"
    elif spec.auth == "bearer":
        assert request.headers["authorization"] == f"Bearer {preset}_sandbox_key_0123456789"
    else:
        assert request.headers[spec.auth_name.lower()] == f"{preset}_sandbox_key_0123456789"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_bad_key_is_an_authentication_error(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, preset: str
) -> None:
    sandbox.state.set_key(preset, "the-right-key")
    with pytest.raises(errors.AuthenticationError) as info:
        GenericCreditHook(_connect(monkeypatch, sandbox, preset)).get_balance()
    assert info.value.vendor == preset
    assert info.value.vendor_name == PRESETS[preset].name
    assert len(sandbox.state.requests_for(preset)) == 1  # never retried
    assert "_sandbox_key_" not in str(info.value)


@pytest.mark.parametrize("fault", ["wrong_types", "truncated", "html"])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_malformed_answers(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, preset: str, fault: str
) -> None:
    sandbox.state.inject(fault, preset, **({"status": 200} if fault == "html" else {}))
    with pytest.raises(errors.BadResponseError) as info:
        GenericCreditHook(_connect(monkeypatch, sandbox, preset)).get_balance()
    assert PRESETS[preset].name in str(info.value)


def test_split_balances_by_pool(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> None:
    verifier = GenericCreditHook(_connect(monkeypatch, sandbox, "findymail", pool="verifier")).get_balance()
    assert (verifier.available, verifier.vendor) == (Decimal(300), "findymail:verifier")
    searches = GenericCreditHook(_connect(monkeypatch, sandbox, "hunter", pool="searches")).get_balance()
    assert searches.available == Decimal(490)  # remaining, not the 500 allowance
    with pytest.raises(
        errors.CreditConnectionConfigError, match="no balance pool 'bogus'; pools: finder, verifier"
    ):
        GenericCreditHook(_connect(monkeypatch, sandbox, "findymail", pool="bogus")).get_balance()


def test_neverbounce_sums_paid_and_free(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> None:
    sandbox.state.account("neverbounce").credits = Decimal(1000)
    balance = GenericCreditHook(_connect(monkeypatch, sandbox, "neverbounce")).get_balance()
    assert balance.available == Decimal(1000)  # 900 paid + 100 free
    assert balance.used == Decimal(1200)


def test_hunter_optional_fields(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> None:
    balance = GenericCreditHook(_connect(monkeypatch, sandbox, "hunter")).get_balance()
    assert balance.plan == "Starter"
    assert balance.used == Decimal("12.5")
    assert balance.next_reset_at is not None
    # Relative to now: the first of next month, so never a date already past.
    assert balance.next_reset_at > balance.fetched_at
    assert balance.next_reset_at.day == 1
    assert balance.next_reset_at - balance.fetched_at <= timedelta(days=31)


def test_described_api_without_a_preset(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> None:
    # An "in-house" API described field by field: here the sandbox's Bouncer emulation.
    conn = {
        "conn_type": "credit_api",
        "password": "bouncer_sandbox_key_0123456789",
        "extra": {
            **FAST_EXTRA,
            "base_url": sandbox.base_url("bouncer"),
            "path": "/v1.1/credits",
            "auth": "header",
            "auth_name": "x-api-key",
            "available_path": "$.credits",
            "name": "In-house",
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_INHOUSE", json.dumps(conn))
    balance = GenericCreditHook("inhouse").get_balance()
    assert (balance.available, balance.vendor) == (Decimal(5000), "credit_api")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"preset": "nope"}, "Unknown credit API preset 'nope'"),
        ({"path": "/x"}, "needs the host (base URL), available_path"),
        ({"preset": "bouncer", "auth": "cookie"}, "auth must be one of"),
        ({"preset": "bouncer", "available_path": "$[?("}, "Invalid JSON path"),
    ],
)
def test_bad_descriptions(extra: dict[str, str], fragment: str) -> None:
    with pytest.raises(errors.CreditConnectionConfigError, match=re.escape(fragment)):
        CreditApiSpec.from_extra(extra)


@pytest.mark.parametrize("preset", QUERY_KEYED)
def test_query_parameter_key_never_reaches_a_log_or_message(
    monkeypatch: pytest.MonkeyPatch,
    sandbox: SandboxServer,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    preset: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # httpx logs every URL, query string included
    sandbox.state.set_key(preset, CANARY)
    conn_id = _connect(monkeypatch, sandbox, preset)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({**json.loads(os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"]), "password": CANARY}),
    )
    hook = GenericCreditHook(conn_id)
    seen = [repr(hook.get_balance())]
    for fault in ({"kind": "status", "status": 500, "times": -1}, {"kind": "drop", "times": -1}):
        sandbox.state.inject(fault.pop("kind"), preset, **fault)
        with pytest.raises(errors.CreditApiError) as info:
            hook.get_balance()
        seen += [str(info.value), repr(info.value)]
        sandbox.state.clear_faults()
    sandbox.state.set_key(preset, "other")
    with pytest.raises(errors.AuthenticationError) as info:
        hook.get_balance()
    seen.append(str(info.value))
    out, err = capfd.readouterr()
    assert "HTTP Request" in caplog.text  # httpx did log the URLs...
    for text in (*seen, caplog.text, out, err):
        assert CANARY not in text  # ...without the key


# Exactly what Airflow 3.3's declarative form saves for a ZeroBounce connection: every empty field null.
UI_SAVED_EXTRA = {
    "preset": "zerobounce",
    "path": None,
    "auth": None,
    "auth_name": None,
    "available_path": None,
    "pool": None,
    "timeout": 30,
    "max_retries": None,
    "max_retry_wait": None,
}


def test_a_connection_saved_by_the_ui_form_works(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer
) -> None:
    conn = sandbox.connection("zerobounce")
    conn["extra"] = UI_SAVED_EXTRA
    monkeypatch.setenv("AIRFLOW_CONN_UI_SAVED", json.dumps(conn))
    balance = GenericCreditHook("ui_saved").get_balance()
    assert (balance.vendor, balance.available) == ("zerobounce", Decimal(5000))


def test_prefixed_and_empty_fields_of_older_forms_mean_unset(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer
) -> None:
    conn = sandbox.connection("hunter")
    conn["extra"] = {"extra__credit_api__preset": "hunter", "extra__credit_api__pool": "", "auth": ""}
    monkeypatch.setenv("AIRFLOW_CONN_OLD_FORM", json.dumps(conn))
    assert GenericCreditHook("old_form").get_balance().vendor == "hunter"


def test_without_a_preset_the_host_is_the_base_url(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer
) -> None:
    sandbox.state.account("bouncer").credits = Decimal("77")
    conn = {
        "conn_type": "credit_api",
        "host": sandbox.base_url("bouncer"),
        "password": next(iter(sandbox.state.keys["bouncer"])),
        "extra": {
            "path": "/v1.1/credits",
            "auth_name": "x-api-key",
            "available_path": "credits",
            "preset": None,
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_IN_HOUSE", json.dumps(conn))
    balance = GenericCreditHook("in_house").get_balance()
    assert balance.available == Decimal("77")
    assert [r.path for r in sandbox.state.requests_for("bouncer")] == ["/v1.1/credits"]


def test_the_classmethod_form_keeps_the_generic_extra_visible() -> None:
    behaviour = GenericCreditHook.get_ui_field_behaviour()
    assert "extra" not in behaviour["hidden_fields"]
    assert "password" not in behaviour["hidden_fields"]


def test_hunter_pools_read_what_is_left_not_the_allowance(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer
) -> None:
    conn_id = _connect(monkeypatch, sandbox, "hunter", pool="verifications")
    balance = GenericCreditHook(conn_id).get_balance()
    assert (balance.vendor, balance.available) == ("hunter:verifications", Decimal(995))  # allowance 1000


@pytest.mark.parametrize(("fault", "options"), [("rate_limit", {}), ("status", {"status": 503})])
def test_neverbounce_try_again_answers_are_retried(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, fault: str, options: dict[str, Any]
) -> None:
    # NeverBounce answers HTTP 200 {"status": "throttle_triggered" | "temp_unavail"}: retried like 429/5xx.
    sandbox.state.inject(fault, "neverbounce", times=2, **options)
    balance = GenericCreditHook(_connect(monkeypatch, sandbox, "neverbounce")).get_balance()
    assert balance.available == Decimal(5000)
    assert len(sandbox.state.requests_for("neverbounce")) == 3


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (429, errors.RateLimitedError, "Too many requests"),
        (503, errors.VendorUnavailableError, "temporarily unavailable"),
        (403, errors.PermissionDeniedError, "referrer"),
        (400, errors.InvalidRequestError, "Missing required parameter"),
    ],
)
def test_neverbounce_failure_statuses_map_to_their_error_class(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, status: int, error: type, text: str
) -> None:
    sandbox.state.inject("status", "neverbounce", status=status, times=-1)
    with pytest.raises(error, match=text) as info:
        GenericCreditHook(_connect(monkeypatch, sandbox, "neverbounce")).get_balance()
    retried = status in (429, 503)
    assert len(sandbox.state.requests_for("neverbounce")) == (3 if retried else 1)  # max_retries=2
    assert ("Gave up after 3 attempts" in str(info.value)) is retried
