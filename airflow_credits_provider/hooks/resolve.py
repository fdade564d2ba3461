"""Resolve a connection id to its hook, the Airflow way (by connection type), and check its kind."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import CreditConnectionConfigError, CreditProviderError

if TYPE_CHECKING:
    from airflow_credits_provider.hooks.base import CreditApiHook

#: Provider packages whose name is not ``apache-airflow-providers-<connection type>``.
_PACKAGES = {
    "mssql": "apache-airflow-providers-microsoft-mssql",
    "google_cloud_platform": "apache-airflow-providers-google",
    "gcpbigquery": "apache-airflow-providers-google",
    "aws": "apache-airflow-providers-amazon",
    "redshift": "apache-airflow-providers-amazon",
    "databricks": "apache-airflow-providers-databricks",
    "mariadb": "apache-airflow-providers-mysql",
}


def get_connection(conn_id: str) -> Any:
    """Look a connection up as Airflow does (environment, secrets backends, metadata database).

    :raises CreditConnectionConfigError: no such connection (instead of Airflow's bare not-found error)
    """
    from airflow_credits_provider.compat import AirflowNotFoundException, BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise CreditConnectionConfigError(
            f"Connection {conn_id!r} is not defined. Create it in the UI, with `airflow connections add`, "
            f"or as the environment variable AIRFLOW_CONN_{conn_id.upper()}."
        ) from None


def checked_hook(conn_id: str, conn: Any, expected: type, what: str) -> Any:
    """Return ``conn``'s hook, or fail clearly when it is not an ``expected`` hook.

    :param what: how to describe the mismatch, e.g. "not a SQL database connection type"
    """
    try:
        hook = conn.get_hook()
    except CreditProviderError:
        raise
    except Exception as exc:  # Airflow raises a bare AirflowException or ImportError here
        package = _PACKAGES.get(conn.conn_type, f"apache-airflow-providers-{conn.conn_type}")
        raise CreditConnectionConfigError(
            f"Connection {conn_id!r} has type {conn.conn_type!r}, whose hook Airflow cannot load "
            f"({type(exc).__name__}): install the provider package for it, e.g. `pip install {package}`."
        ) from None
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
    from airflow_credits_provider.hooks.base import CreditApiHook

    return checked_hook(conn_id, get_connection(conn_id), CreditApiHook, _not_credit())  # type: ignore[no-any-return]


async def aget_credit_hook(conn_id: str) -> CreditApiHook:
    """Async twin of :func:`get_credit_hook`, for triggers (does not block the event loop on I/O)."""
    from airflow_credits_provider.compat import AirflowNotFoundException, get_async_connection
    from airflow_credits_provider.hooks.base import CreditApiHook

    try:
        conn = await get_async_connection(conn_id)
    except AirflowNotFoundException:
        raise CreditConnectionConfigError(f"Connection {conn_id!r} is not defined.") from None
    return checked_hook(conn_id, conn, CreditApiHook, _not_credit())  # type: ignore[no-any-return]
