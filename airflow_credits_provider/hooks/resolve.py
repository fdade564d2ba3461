"""Resolve a connection id to its credit hook, the Airflow way (by connection type)."""

from __future__ import annotations

from airflow_credits_provider.client.transport import prepare_tls
from airflow_credits_provider.errors import CreditConnectionConfigError
from airflow_credits_provider.hooks.base import CreditApiHook
from airflow_credits_provider.hooks.connections import checked_hook, get_connection


def _not_credit() -> str:
    from airflow_credits_provider.vendors import registered_vendors

    return f"not a credit API connection type ({', '.join(registered_vendors())})"


def get_credit_hook(conn_id: str) -> CreditApiHook:
    """Return the credit hook for the connection ``conn_id``, whatever its vendor.

    The shared TLS context is built on the other core while the connection is looked up
    (:func:`~airflow_credits_provider.client.transport.prepare_tls`).

    :raises CreditConnectionConfigError: the connection's type is not a credit connection type
    """
    prepare_tls()
    return checked_hook(conn_id, get_connection(conn_id), CreditApiHook, _not_credit())  # type: ignore[no-any-return]


async def aget_credit_hook(conn_id: str) -> CreditApiHook:
    """Async twin of :func:`get_credit_hook`, for triggers (does not block the event loop on I/O)."""
    from airflow_credits_provider.compat import AirflowNotFoundException, get_async_connection

    prepare_tls()
    try:
        conn = await get_async_connection(conn_id)
    except AirflowNotFoundException:
        raise CreditConnectionConfigError(f"Connection {conn_id!r} is not defined.") from None
    return checked_hook(conn_id, conn, CreditApiHook, _not_credit())  # type: ignore[no-any-return]
