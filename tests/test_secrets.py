"""The canary key never leaks: not in logs, messages, reprs, serialised records or CLI output."""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from airflow_credits_provider import errors
from airflow_credits_provider.hooks.leadmagic import LeadMagicHook
from airflow_credits_provider.hooks.localleads import LocalLeadsHook
from airflow_credits_provider.hooks.truemail import TrueMailHook
from tests.conftest import CANARY, subprocess_env

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer

HOOKS = (LeadMagicHook, LocalLeadsHook, TrueMailHook)
FAULTS = [
    ("status", {"status": 401}),
    ("status", {"status": 402}),
    ("status", {"status": 403}),
    ("status", {"status": 404}),
    ("status", {"status": 500, "times": -1}),
    ("rate_limit", {"times": -1, "retry_after": "0"}),
    ("drop", {"times": -1}),
    ("cut", {"times": -1}),
    ("truncated", {}),
    ("html", {"status": 200}),
    ("wrong_types", {}),
]


def _assert_clean(*texts: str) -> None:
    for text in texts:
        assert CANARY not in text


def test_canary_never_leaks(
    canary_connections: SandboxServer, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    for hook_class in HOOKS:
        hook = hook_class()
        balance = hook.get_balance()
        seen += [
            repr(hook),
            repr(hook.client),
            repr(hook.client._auth),
            str(hook.client._auth),
            repr(balance),
            json.dumps(balance.to_dict()),
        ]
        seen.append(str(hook.test_connection()))
        vendor = hook.vendor_class.key
        for kind, options in FAULTS:
            canary_connections.state.inject(kind, vendor, **{**options, "times": -1})
            for call in (hook.get_balance, lambda h=hook: asyncio.run(h.aget_balance())):
                with pytest.raises(errors.CreditApiError) as info:
                    call()
                exc = info.value
                seen += [str(exc), repr(exc), str(exc.args), json.dumps(vars(exc), default=str)]
                seen.append(str(pickle.loads(pickle.dumps(exc))))
            canary_connections.state.clear_faults()
    # An error body that echoes the key back is scrubbed too.
    canary_connections.state.set_key("truemail", "something-else")
    with pytest.raises(errors.AuthenticationError) as info:
        TrueMailHook().get_balance()
    seen.append(str(info.value))
    out, err = capfd.readouterr()
    _assert_clean(*seen, caplog.text, out, err)
    assert len(seen) > 100  # the loop above really ran every path


def test_key_is_registered_with_airflows_masker(canary_connections: SandboxServer) -> None:
    from airflow.providers.common.compat.sdk import redact

    LeadMagicHook().get_balance()
    assert CANARY not in str(redact(f"header X-API-Key: {CANARY}"))


def test_vendor_message_echoing_the_key_is_scrubbed(canary_connections: SandboxServer) -> None:
    from airflow_credits_provider.vendors.base import ApiRequest

    client = LocalLeadsHook().client
    # A path that carries the key ends up in the message's [method path] part: scrubbed.
    call = ApiRequest("GET", f"/api/v1/{CANARY}")
    with pytest.raises(errors.NotFoundError) as info:
        client.request(call)
    assert CANARY not in str(info.value)
    assert "/api/v1/***" in str(info.value)


def test_cli_output_is_clean(canary_connections: SandboxServer) -> None:
    canary_connections.state.inject("status", "leadmagic", status=401)
    for args in (["balance", "leadmagic_default"], ["balance", "truemail_default", "--json", "--raw"]):
        result = subprocess.run(
            [sys.executable, "-m", "airflow_credits_provider.cli", *args],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            timeout=120,
        )
        assert result.stdout or result.stderr
        _assert_clean(result.stdout, result.stderr)


@pytest.mark.parametrize("vendor", ["leadmagic", "truemail", "zerobounce"])  # header, bearer, query key
@pytest.mark.parametrize("bad", ["\ntail", "\r\nX-Injected: 1", " tail", "\x00", "é"])
def test_unsendable_key_is_a_config_error_before_any_request(
    monkeypatch: pytest.MonkeyPatch,
    sandbox: SandboxServer,
    caplog: pytest.LogCaptureFixture,
    vendor: str,
    bad: str,
) -> None:
    from urllib.parse import quote

    from airflow_credits_provider.hooks.resolve import get_credit_hook
    from tests.conftest import set_connection

    key = CANARY + bad + CANARY
    set_connection(monkeypatch, "bad_key", sandbox, vendor, password=key)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(errors.CreditConnectionConfigError, match="cannot be sent in an HTTP header") as info:
        get_credit_hook("bad_key").get_balance()
    assert sandbox.state.requests == []  # never sent, so never retried
    shown = [str(info.value), repr(info.value), caplog.text]
    for form in (key, key.encode(), repr(key), quote(key), CANARY):
        for text in shown:
            assert str(form) not in text
