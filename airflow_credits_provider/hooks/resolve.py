"""Resolve any credit connection id to its hook, the Airflow way (by connection type)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_credits_provider.errors import CreditConnectionConfigError

if TYPE_CHECKING:
    from airflow_credits_provider.hooks.base import CreditApiHook


def get_credit_hook(conn_id: str) -> CreditApiHook:
    """Return the credit hook for the connection ``conn_id``, whatever its vendor.

    :raises CreditConnectionConfigError: the connection's type is not a credit connection type
    """
    from airflow.sdk import BaseHook

    from airflow_credits_provider.hooks.base import CreditApiHook

    conn = BaseHook.get_connection(conn_id)
    hook = conn.get_hook()  # type: ignore[no-untyped-call]
    if not isinstance(hook, CreditApiHook):
        raise CreditConnectionConfigError(
            f"Connection {conn_id!r} has type {conn.conn_type!r}, which is not a credit API connection "
            "type (leadmagic, localleads, truemail)."
        )
    return hook
