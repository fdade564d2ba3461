"""The connection form of every credit connection type, declared the Airflow 3.2+ way.

This module is read at provider discovery, so it imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_credits_provider.vendors.base import CreditVendor

#: Extras every credit connection understands: name -> (type, default, minimum, maximum).
CONNECTION_EXTRAS: dict[str, tuple[type, float, float, float]] = {
    "timeout": (float, 30.0, 0.001, 3600.0),
    "max_retries": (int, 4, 0, 20),
    "max_retry_wait": (float, 30.0, 0.0, 3600.0),
    "retry_initial_wait": (float, 0.5, 0.0, 600.0),
}


def read_extra(extra: Any, conn_type: str) -> dict[str, Any]:
    """A connection's extra as the hooks read it: form prefixes removed, unset fields dropped.

    Airflow's declarative form (3.2+) saves every empty field as ``null``, older forms as ``""``, and
    older forms prefix field names (``extra__credit_api__preset``). Null and empty mean unset, for
    every credit connection type and every field.
    """
    if not isinstance(extra, dict):
        return {}
    prefix = f"extra__{conn_type}__"
    return {
        key.removeprefix(prefix): value for key, value in extra.items() if value is not None and value != ""
    }


def connection_form(
    vendor: type[CreditVendor] | CreditVendor, describe_api: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return the ``connection-types`` entry for ``vendor``: the Airflow 3.2+ declarative form.

    The API key lives in the password field relabelled "API key" (masked); the host is optional and
    defaults to the vendor's base URL; the extras tune timeout and retries.

    :param describe_api: extra form fields describing the API (the generic connection type), which
        also keeps the raw extra field visible for the advanced settings
    """
    form: dict[str, Any] = {
        "conn-fields": {
            **(describe_api or {}),
            "timeout": {
                "label": "Timeout (seconds)",
                "schema": {"type": ["number", "null"], "default": CONNECTION_EXTRAS["timeout"][1]},
                "description": "Connect/read timeout for each request.",
            },
            "max_retries": {
                "label": "Max retries",
                "schema": {"type": ["integer", "null"], "default": CONNECTION_EXTRAS["max_retries"][1]},
                "description": "Retries after 429, 5xx and network errors (0 disables).",
            },
            "max_retry_wait": {
                "label": "Max wait between retries (seconds)",
                "schema": {"type": ["number", "null"], "default": CONNECTION_EXTRAS["max_retry_wait"][1]},
                "description": "Cap on backoff and on the vendor's Retry-After.",
            },
        },
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "login", "port", "extra"],
            "relabeling": {"password": "API key", "host": "Base URL (optional)"},
            "placeholders": {
                "host": vendor.default_base_url,
                "password": vendor.key_hint or "Your API key",
                "timeout": str(CONNECTION_EXTRAS["timeout"][1]),
                "max_retries": str(CONNECTION_EXTRAS["max_retries"][1]),
                "max_retry_wait": str(CONNECTION_EXTRAS["max_retry_wait"][1]),
            },
        },
    }
    if describe_api:
        form["ui-field-behaviour"]["hidden-fields"].remove("extra")
        form["ui-field-behaviour"]["relabeling"]["host"] = "Base URL (required without a preset)"
        form["ui-field-behaviour"]["placeholders"]["host"] = "https://api.example.com"
    return form


def generic_api_fields(presets: Mapping[str, str]) -> dict[str, Any]:
    """Form fields of the generic ``credit_api`` connection type (the rest goes in the extra).

    Drop-downs list their choices without ``null`` (Airflow's form would show the word "null" as an
    option); an empty choice is saved as ``null``, which means "not set".

    :param presets: preset key -> display name, in display order
    """
    from airflow_credits_provider.vendors.generic import AUTH_STYLES_DISPLAY

    def text(label: str, description: str) -> dict[str, Any]:
        return {"label": label, "schema": {"type": ["string", "null"]}, "description": description}

    return {
        "preset": {
            "label": "Preset",
            "schema": {"type": ["string", "null"], "enum": list(presets), "values_display": dict(presets)},
            "description": "A credit API this provider already describes (request, key, balance fields, "
            "error answers). Leave it empty to describe your own API with the host and the fields below; "
            "with a preset, any field below that you fill overrides the preset's setting.",
        },
        "path": text("Balance path", "Path of the balance request below the host, e.g. /v2/getcredits."),
        "auth": {
            "label": "Key sent as",
            "schema": {
                "type": ["string", "null"],
                "enum": list(AUTH_STYLES_DISPLAY),
                "values_display": AUTH_STYLES_DISPLAY,
            },
            "description": "How the API key travels. Empty: the preset's way, or a header.",
        },
        "auth_name": text(
            "Key header / parameter name", "e.g. X-API-Key for a header, or api_key for a query parameter."
        ),
        "available_path": text(
            "Balance JSON path", "JSON path to the spendable balance in the answer, e.g. data.credits."
        ),
        "pool": text("Balance pool", "For split balances: which one, e.g. verifier for Findymail."),
    }
