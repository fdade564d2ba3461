"""How a hook reads its Airflow connection: key, base URL, extras, and the errors when they are wrong."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from airflow_credits_provider.errors import CreditConnectionConfigError
from airflow_credits_provider.hooks.leadmagic import LeadMagicHook
from airflow_credits_provider.hooks.localleads import LocalLeadsHook
from airflow_credits_provider.hooks.truemail import TrueMailHook

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer


def _set(monkeypatch: pytest.MonkeyPatch, conn_id: str, **conn: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def test_defaults_to_the_vendors_documented_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for hook_class, url in (
        (LeadMagicHook, "https://api.leadmagic.io"),
        (LocalLeadsHook, "https://leadsapi.postorbit.io"),
        (TrueMailHook, "https://api.truemail.app"),
    ):
        _set(monkeypatch, "c", conn_type=hook_class.conn_type, password="k")
        client = hook_class("c").client
        assert client.settings.base_url == url
        assert client.settings.timeout == 30.0
        assert client.settings.retry.max_retries == 4


def test_host_with_schema_and_port(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> None:
    port = sandbox.url.rsplit(":", 1)[1]
    _set(
        monkeypatch,
        "c",
        conn_type="truemail",
        password=sandbox.state.keys["truemail"].copy().pop(),
        host="127.0.0.1",
        port=int(port),
        schema="http",
    )
    hook = TrueMailHook("c")
    assert hook.client.settings.base_url == f"http://127.0.0.1:{port}"
    # The root of the sandbox has no vendor: the 404 names the host as the thing to check.
    with pytest.raises(Exception, match="Check the connection's host"):
        hook.get_balance()


def test_uri_form_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_URI", "leadmagic://:secret-key@api.example.test/?timeout=5&max_retries=1"
    )
    client = LeadMagicHook("uri").client
    assert client.settings.base_url == "https://api.example.test"
    assert client.settings.timeout == 5.0
    assert client.settings.retry.max_retries == 1


def test_prefixed_extras_and_constructor_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, "c", conn_type="leadmagic", password="k", extra={"extra__leadmagic__timeout": "7.5"})
    assert LeadMagicHook("c").client.settings.timeout == 7.5
    assert LeadMagicHook("c", timeout=1, max_retries=0).client.settings.retry.max_retries == 0


def test_missing_key_says_where_to_put_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, "nokey", conn_type="localleads", host="https://leadsapi.postorbit.io")
    with pytest.raises(
        CreditConnectionConfigError, match="'nokey' has no API key: put the LocalLeads API key"
    ):
        LocalLeadsHook("nokey").get_balance()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"timeout": "fast"}, "'timeout' must be a number"),
        ({"timeout": 0}, "'timeout' must be between"),
        ({"max_retries": 2.5}, "'max_retries' must be a whole number"),
        ({"max_retries": 99}, "between 0 and 20"),
        ({"max_retry_wait": True}, "'max_retry_wait' must be a number"),
    ],
)
def test_bad_extras(monkeypatch: pytest.MonkeyPatch, extra: dict[str, object], fragment: str) -> None:
    _set(monkeypatch, "c", conn_type="leadmagic", password="k", extra=extra)
    with pytest.raises(CreditConnectionConfigError, match=fragment):
        LeadMagicHook("c").get_balance()


def test_bad_host_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, "c", conn_type="leadmagic", password="k", host="ftp://files.example")
    with pytest.raises(CreditConnectionConfigError, match="must start with http"):
        LeadMagicHook("c").get_balance()


def test_constructor_does_no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_DOES_NOT_EXIST", raising=False)
    hook = LeadMagicHook("does_not_exist")  # no lookup yet
    assert repr(hook) == "LeadMagicHook(credit_conn_id='does_not_exist')"
    with pytest.raises(Exception, match="does_not_exist"):
        hook.get_balance()
