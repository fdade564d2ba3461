"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

Connection types, hooks and integrations come from the vendor registry
(:func:`airflow_credits_provider.vendors.registered_vendors`): a new vendor module appears here without
being listed.
"""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """Return the provider description: hooks, connection types and their forms."""
    from airflow_credits_provider import __version__
    from airflow_credits_provider.config import OPTIONS
    from airflow_credits_provider.hooks.connection_form import connection_form, generic_api_fields
    from airflow_credits_provider.vendors import registered_vendors
    from airflow_credits_provider.vendors.generic import PRESETS

    vendors = list(registered_vendors().values())
    presets = {key: spec.name for key, spec in sorted(PRESETS.items(), key=lambda item: item[1].name.lower())}
    return {
        "package-name": "airflow-credits-provider",
        "name": "Credits",
        "description": "Check vendor credit balances before a DAG spends them ("
        + ", ".join(v.display_name for v in vendors if not v.generic)
        + ", ...).",
        "versions": [__version__],
        "integrations": [
            {"integration-name": "Credits", "tags": ["service"]},
            *(
                {
                    "integration-name": vendor.hook_name(),
                    "external-doc-url": vendor.default_base_url,
                    "tags": ["service"],
                }
                for vendor in vendors
            ),
        ],
        "hooks": [
            {
                "integration-name": vendor.hook_name(),
                "python-modules": [vendor.hook_class_name.rsplit(".", 1)[0]],
            }
            for vendor in vendors
        ],
        "operators": [
            {
                "integration-name": "Credits",
                "python-modules": [
                    "airflow_credits_provider.operators.preflight",
                    "airflow_credits_provider.operators.reservation",
                    "airflow_credits_provider.operators.runway",
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
                "python-modules": [
                    "airflow_credits_provider.triggers.balance",
                    "airflow_credits_provider.triggers.reservation",
                    "airflow_credits_provider.triggers.credits_available",
                ],
            }
        ],
        "transfers": [
            {
                "source-integration-name": "Credits",
                "target-integration-name": "Common SQL",
                "python-module": module,
                "how-to-guide": "docs/landing.md",
            }
            for module in (
                "airflow_credits_provider.transfers.credit_transactions_to_sql",
                "airflow_credits_provider.transfers.credit_balance_to_sql",
            )
        ],
        # Loaded through the airflow.plugins entry point; named here too for `airflow providers plugins`
        # and for deployments that turn lazy provider discovery off (Airflow skips the duplicate).
        "plugins": [{"name": "credits", "plugin-class": "airflow_credits_provider.ui.plugin.CreditsPlugin"}],
        # Airflow 3.2+: `airflow credits budgets ...` (older versions ignore the key; use airflow-credits)
        "cli": ["airflow_credits_provider.cli.airflow_commands.get_cli_commands"],
        "config": {
            "credits": {
                "description": "Where the Credits pages in Airflow's UI read history, holds and spend "
                "(docs/ui.md).",
                "options": {
                    name: {
                        "description": description,
                        "version_added": "0.1.0",
                        "type": "float" if default.replace(".", "").isdigit() else "string",
                        "example": None,
                        "default": default,
                    }
                    for name, (default, description) in OPTIONS.items()
                },
            }
        },
        "connection-types": [
            {
                "connection-type": vendor.key,
                "hook-class-name": vendor.hook_class_name,
                "hook-name": vendor.hook_name(),
                **connection_form(vendor, generic_api_fields(presets) if vendor.generic else None),
            }
            for vendor in vendors
        ],
    }
