"""Resolve a connection id to its hook, the Airflow way (by connection type), and check its kind."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import CreditConnectionConfigError

if TYPE_CHECKING:
    from airflow_credits_provider.hooks.base import CreditApiHook


def checked_hook(conn_id: str, conn: Any, expected: type, what: str) -> Any:
    """Return ``conn``'s hook, or fail clearly when it is not an ``expected`` hook.

    :param what: how to describe the mismatch, e.g. "not a SQL database connection type"
    """
    hook = conn.get_hook()
    if not isinstance(hook, expected):
        raise CreditConnectionConfigError(
            f"Connection {conn_id!r} has type {conn.conn_type!r}, which is {what}."
        )
    return hook


def _not_credit() -> str:
    from airflow_credits_provider.vendors import registered_vendors

    return f"not a credit API connection type ({', '.join(registered_vendors())})"


def get_credit_hook(conn_id: str) -> CreditApiHook:
    """Return the credit hook for the connection ``conn_id``, whatever its vendor.

    :raises CreditConnectionConfigError: the connection's type is not a credit connection type
    """
    from airflow.sdk import BaseHook

    from airflow_credits_provider.hooks.base import CreditApiHook

    return checked_hook(conn_id, BaseHook.get_connection(conn_id), CreditApiHook, _not_credit())  # type: ignore[no-any-return]


async def aget_credit_hook(conn_id: str) -> CreditApiHook:
    """Async twin of :func:`get_credit_hook`, for triggers (does not block the event loop on I/O)."""
    from airflow.sdk import BaseHook

    from airflow_credits_provider.hooks.base import CreditApiHook

    conn = await BaseHook.aget_connection(conn_id)
    return checked_hook(conn_id, conn, CreditApiHook, _not_credit())  # type: ignore[no-any-return]
