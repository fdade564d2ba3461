"""How every command finds its connections and settings: as Airflow's own CLI does.

Connections: :func:`~airflow_credits_provider.hooks.connections.load_connection` (the metadata database
included); settings: :func:`credits_setting`.
"""

from __future__ import annotations


def credits_setting(name: str) -> str:
    """The ``[credits]`` option ``name`` (``AIRFLOW__CREDITS__<NAME>``), or ``""`` when it is not set."""
    from airflow_credits_provider.compat import conf

    return str(conf.get("credits", name, fallback="") or "")
