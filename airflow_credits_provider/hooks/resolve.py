"""Resolve any credit connection id to its hook, the Airflow way (by connection type)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import CreditConnectionConfigError

if TYPE_CHECKING:
    from airflow_credits_provider.hooks.base import CreditApiHook


def _credit_hook(conn_id: str, conn: Any) -> CreditApiHook:
    from airflow_credits_provider.hooks.base import CreditApiHook

    hook = conn.get_hook()
    if not isinstance(hook, CreditApiHook):
        raise CreditConnectionConfigError(
            f"Connection {conn_id!r} has type {conn.conn_type!r}, which is not a credit API connection "
            "type (leadmagic, localleads, truemail)."
        )
    return hook


def get_credit_hook(conn_id: str) -> CreditApiHook:
    """Return the credit hook for the connection ``conn_id``, whatever its vendor.

    :raises CreditConnectionConfigError: the connection's type is not a credit connection type
    """
    from airflow.sdk import BaseHook

    return _credit_hook(conn_id, BaseHook.get_connection(conn_id))


async def aget_credit_hook(conn_id: str) -> CreditApiHook:
    """Async twin of :func:`get_credit_hook`, for triggers (does not block the event loop on I/O)."""
    from airflow.sdk import BaseHook

    return _credit_hook(conn_id, await BaseHook.aget_connection(conn_id))
