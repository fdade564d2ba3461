"""How every command finds its connections and settings: as Airflow's own CLI does."""

from __future__ import annotations

import os


def load_connection(conn_id: str) -> None:
    """Find ``conn_id`` where ``airflow connections get`` does, and make it visible to this process's hooks.

    The credit hooks find a connection in the metadata database by themselves outside a task; the SQL
    hooks (the runway's warehouse, the reservation database) do not. The connection found is exported to
    this process's environment only, as Airflow's connection-test endpoint does, so that every hook reads
    it the usual way.
    """
    from airflow_credits_provider.hooks.connections import get_connection

    variable = f"AIRFLOW_CONN_{conn_id.upper()}"
    if not os.environ.get(variable):
        os.environ[variable] = get_connection(conn_id).as_json()


def credits_setting(name: str) -> str:
    """The ``[credits]`` option ``name`` (``AIRFLOW__CREDITS__<NAME>``), or ``""`` when it is not set."""
    from airflow_credits_provider.compat import conf

    return str(conf.get("credits", name, fallback="") or "")
