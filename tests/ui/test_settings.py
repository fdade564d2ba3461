"""The ``[credits]`` options: read from Airflow's configuration, declared in the provider info."""

from __future__ import annotations

import pytest

from airflow_credits_provider.config import CreditsSettings
from airflow_credits_provider.get_provider_info import get_provider_info


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WAREHOUSE_CONN_ID", "BALANCE_CACHE_SECONDS", "BALANCE_TIMEOUT", "RESERVATIONS_CONN_ID"):
        monkeypatch.delenv(f"AIRFLOW__CREDITS__{name}", raising=False)
    assert CreditsSettings.from_airflow() == CreditsSettings()
    monkeypatch.setenv("AIRFLOW__CREDITS__WAREHOUSE_CONN_ID", " credits_warehouse ")
    monkeypatch.setenv("AIRFLOW__CREDITS__BALANCE_CACHE_SECONDS", "0")
    settings = CreditsSettings.from_airflow()
    assert settings.warehouse_conn_id == "credits_warehouse"
    assert settings.balance_cache_seconds == 0


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("BALANCE_TIMEOUT", "-1"),
        ("BALANCE_TIMEOUT", "0"),
        ("RUNWAY_WINDOW_DAYS", "abc"),
        ("BALANCE_CACHE_SECONDS", "inf"),
    ],
)
def test_a_bad_number_names_its_option(monkeypatch: pytest.MonkeyPatch, option: str, value: str) -> None:
    monkeypatch.setenv(f"AIRFLOW__CREDITS__{option}", value)
    with pytest.raises(
        ValueError, match=rf"\[credits\] {option.lower()} must be a positive number.*{value!r}"
    ):
        CreditsSettings.from_airflow()


def test_the_provider_info_declares_every_option_with_its_default() -> None:
    options = get_provider_info()["config"]["credits"]["options"]
    defaults = CreditsSettings()
    assert set(options) == set(vars(defaults))
    assert options["balance_cache_seconds"]["default"] == "60"
    assert options["balance_cache_seconds"]["type"] == "float"
    assert options["snapshots_table"]["default"] == defaults.snapshots_table
    assert all(option["description"] for option in options.values())
