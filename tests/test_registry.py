"""One vendor registry: everything that lists vendors derives from it, and a new vendor is one module each.

The last test adds a vendor the way docs/contributing.md describes (a description, a hook class, a
sandbox emulation) and checks that provider info, the connection form, display names, the hook's
metadata and the sandbox pick it up with nothing else edited.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from airflow_credits_provider.get_provider_info import get_provider_info
from airflow_credits_provider.hooks.base import CreditApiHook
from airflow_credits_provider.models import CreditBalance
from airflow_credits_provider.parsing import decimal_at
from airflow_credits_provider.sandbox import SandboxServer, SandboxState
from airflow_credits_provider.sandbox.emulators.base import Emulator, Reply
from airflow_credits_provider.vendors import display_name, registered_vendors
from airflow_credits_provider.vendors.base import ApiRequest, CreditVendor, HeaderKeyAuth

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx
    from pendulum import DateTime

    from airflow_credits_provider.sandbox.emulators.base import Request
    from airflow_credits_provider.sandbox.state import SandboxState as State


def test_the_registry_holds_every_vendor_once() -> None:
    assert list(registered_vendors()) == ["leadmagic", "localleads", "truemail", "credit_api"]


@pytest.mark.parametrize("key", ["leadmagic", "localleads", "truemail", "credit_api"])
def test_each_vendor_names_a_hook_that_serves_it(key: str) -> None:
    vendor = registered_vendors()[key]
    module, _, name = vendor.hook_class_name.rpartition(".")
    hook = getattr(importlib.import_module(module), name)
    assert hook.vendor_class is vendor
    assert (hook.conn_type, hook.default_conn_name, hook.hook_name) == (
        key,
        f"{key}_default",
        vendor.hook_name(),
    )


def test_provider_info_lists_the_registry() -> None:
    info = get_provider_info()
    types = {entry["connection-type"]: entry["hook-class-name"] for entry in info["connection-types"]}
    assert types == {key: vendor.hook_class_name for key, vendor in registered_vendors().items()}


def test_display_names_cover_vendors_presets_and_pools() -> None:
    assert display_name("leadmagic") == "LeadMagic"
    assert display_name("millionverifier") == "MillionVerifier"
    assert display_name("findymail:verifier") == "Findymail (verifier)"
    assert display_name("in_house_api") == "in_house_api"


# -- a new vendor, added as docs/contributing.md says ------------------------------------------------
# Defined when the test runs (defining a vendor registers it), and unregistered after it.
def _define_acme() -> type[CreditApiHook]:
    class AcmeVendor(CreditVendor):
        """Acme's credit API (a made-up vendor): ``GET /v2/balance`` with the key in ``X-Acme-Key``."""

        key = "acme"
        display_name = "Acme Credits"
        default_base_url = "https://api.acme.example"
        balance_request = ApiRequest("GET", "/v2/balance")
        key_hint = "acme_..."
        hook_class_name = "tests.test_registry.AcmeHook"

        def auth(self, api_key: str) -> httpx.Auth:
            return HeaderKeyAuth("X-Acme-Key", api_key)

        def parse_balance(self, payload: Any, fetched_at: DateTime) -> CreditBalance:
            available = decimal_at(payload, "balance.remaining")
            assert available is not None
            return CreditBalance(
                vendor=self.key, vendor_name=self.display_name, available=available, fetched_at=fetched_at
            )

    class AcmeHook(CreditApiHook):
        """The hook: only the vendor description (no vendor-specific methods)."""

        vendor_class = AcmeVendor

    @dataclass
    class AcmeAccount:
        remaining: Decimal = Decimal("123.45")

    class AcmeEmulator(Emulator):
        key = "acme"
        default_key = "acme_sandbox_key"
        account_type = AcmeAccount

        def handle(self, request: Request, state: State) -> Reply:
            if not state.key_is_valid("acme", request.headers.get("x-acme-key")):
                return self.error(401, state)
            return Reply(200, {"balance": {"remaining": state.account("acme").remaining}})

    AcmeEmulator()
    return AcmeHook


@pytest.fixture
def acme() -> Iterator[type[CreditApiHook]]:
    registered_vendors.cache_clear()
    yield _define_acme()
    CreditVendor.registry.pop("acme")
    Emulator.registry.pop("acme")
    registered_vendors.cache_clear()


def test_a_new_vendor_is_one_description_one_hook_one_emulation(
    acme: type[CreditApiHook], monkeypatch: pytest.MonkeyPatch
) -> None:
    AcmeHook = acme  # noqa: N806 - a class
    info = get_provider_info()
    entry = next(e for e in info["connection-types"] if e["connection-type"] == "acme")
    assert entry["hook-class-name"] == "tests.test_registry.AcmeHook"
    assert entry["hook-name"] == "Acme Credits"
    assert entry["ui-field-behaviour"]["placeholders"]["password"] == "acme_..."
    assert display_name("acme") == "Acme Credits"
    assert AcmeHook.default_conn_name == "acme_default"

    with SandboxServer(SandboxState()) as sandbox:
        env = sandbox.airflow_env()
        assert "AIRFLOW_CONN_ACME_DEFAULT" in env
        monkeypatch.setenv("AIRFLOW_CONN_ACME_DEFAULT", env["AIRFLOW_CONN_ACME_DEFAULT"])
        assert json.loads(env["AIRFLOW_CONN_ACME_DEFAULT"])["conn_type"] == "acme"
        balance = AcmeHook().get_balance()
        assert (balance.vendor, balance.vendor_name, balance.available) == (
            "acme",
            "Acme Credits",
            Decimal("123.45"),
        )
        assert [r.path for r in sandbox.state.requests_for("acme")] == ["/v2/balance"]
