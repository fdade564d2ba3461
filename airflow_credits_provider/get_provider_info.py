"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """Return the provider description: hooks, connection types and their forms."""
    from airflow_credits_provider import __version__
    from airflow_credits_provider.connection_form import connection_form, generic_api_fields
    from airflow_credits_provider.vendors.generic import GenericCreditVendor, preset_names
    from airflow_credits_provider.vendors.leadmagic import LeadMagicVendor
    from airflow_credits_provider.vendors.localleads import LocalLeadsVendor
    from airflow_credits_provider.vendors.truemail import TrueMailVendor

    hooks: list[tuple[str, str, str, Any]] = [
        ("LeadMagic", "leadmagic", "LeadMagicHook", LeadMagicVendor),
        ("LocalLeads", "localleads", "LocalLeadsHook", LocalLeadsVendor),
        ("TrueMail", "truemail", "TrueMailHook", TrueMailVendor),
        ("Credit API (generic)", "generic", "GenericCreditHook", GenericCreditVendor),
    ]
    return {
        "package-name": "airflow-credits-provider",
        "name": "Credits",
        "description": "Check vendor credit balances before a DAG spends them (LeadMagic, LocalLeads, "
        "TrueMail, ...).",
        "versions": [__version__],
        "integrations": [
            {"integration-name": "Credits", "tags": ["service"]},
            *(
                {"integration-name": name, "external-doc-url": vendor.default_base_url, "tags": ["service"]}
                for name, _, _, vendor in hooks
            ),
        ],
        "hooks": [
            {
                "integration-name": name,
                "python-modules": [f"airflow_credits_provider.hooks.{module}"],
            }
            for name, module, _, _ in hooks
        ],
        "operators": [
            {
                "integration-name": "Credits",
                "python-modules": [
                    "airflow_credits_provider.operators.preflight",
                    "airflow_credits_provider.operators.credit_balance_to_sql",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Credits",
                "python-modules": ["airflow_credits_provider.sensors.preflight"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Credits",
                "python-modules": ["airflow_credits_provider.triggers.balance"],
            }
        ],
        "transfers": [
            {
                "source-integration-name": "LocalLeads",
                "target-integration-name": "Common SQL",
                "python-module": "airflow_credits_provider.operators.credit_transactions_to_sql",
                "how-to-guide": "docs/landing.md",
            }
        ],
        "connection-types": [
            {
                "connection-type": vendor.key,
                "hook-class-name": f"airflow_credits_provider.hooks.{module}.{cls}",
                "hook-name": name,
                **connection_form(
                    vendor, generic_api_fields(preset_names()) if module == "generic" else None
                ),
            }
            for name, module, cls, vendor in hooks
        ],
    }
