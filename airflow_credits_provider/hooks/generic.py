"""GenericCreditHook: any credit API, described in the connection (a preset name and/or settings)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_credits_provider.hooks.base import CreditApiHook
from airflow_credits_provider.vendors.generic import CreditApiSpec, GenericCreditVendor

if TYPE_CHECKING:
    from airflow_credits_provider.vendors.base import CreditVendor


class GenericCreditHook(CreditApiHook):
    """Read the balance of any credit API from a connection of type ``credit_api``.

    The connection's extra names a ``preset`` (one of
    :data:`~airflow_credits_provider.vendors.generic.PRESETS`) and/or describes the API: ``base_url``,
    ``path``, ``method``, ``auth``
    (``header``, ``bearer`` or ``query``), ``auth_name``, ``available_path`` (a JSON path, or a list
    summed), ``pool``, the optional ``total_path``, ``used_path``, ``locked_path``, ``plan_path`` and
    ``reset_path``, ``success_path`` + ``success_values``, ``error_when`` and ``message_paths``. The key
    is the password, as for every credit connection; the host, when set, overrides the base URL.

    It serves everything the named vendors' hooks serve: the normalised balance, the error tree and
    retries, the Test button, the CLI, the preflight operator and sensor (deferrable included) and the
    balance snapshot operator.

    :param credit_conn_id: the Airflow connection id (default ``credit_api_default``)
    """

    vendor_class = GenericCreditVendor

    def _vendor(self, extra: dict[str, Any], conn: Any) -> CreditVendor:
        host = (conn.host or "").strip()
        if host and "base_url" not in extra:  # the host field is the base URL, as for every credit type
            extra = {**extra, "base_url": host}
        return GenericCreditVendor(CreditApiSpec.from_extra(extra))
