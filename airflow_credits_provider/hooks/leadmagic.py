"""LeadMagic hook: balance, refresh, health and any other LeadMagic call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import ResponseFormatError
from airflow_credits_provider.hooks.base import CreditApiHook
from airflow_credits_provider.parsing import to_decimal
from airflow_credits_provider.vendors.base import ApiRequest
from airflow_credits_provider.vendors.leadmagic import LeadMagicVendor

if TYPE_CHECKING:
    from collections.abc import Mapping
    from decimal import Decimal

    import httpx

    from airflow_credits_provider.models import CreditBalance


class LeadMagicHook(CreditApiHook):
    """Talk to LeadMagic's API with the key from an Airflow connection of type ``leadmagic``.

    Besides :meth:`get_balance`, it refreshes the balance, checks the key, and sends any other
    LeadMagic call through :meth:`request`, recording the ``X-Credits-Remaining`` header that every
    response carries as :attr:`last_known_balance`.

    :param credit_conn_id: the Airflow connection id (default ``leadmagic_default``)
    """

    vendor_class = LeadMagicVendor

    def __init__(self, credit_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(credit_conn_id, **kwargs)
        #: Credits left as of the latest response's ``X-Credits-Remaining`` header.
        self.last_known_balance: Decimal | None = None
        #: Credits charged by the latest call, from ``X-Credits-Cost``.
        self.last_credits_cost: Decimal | None = None

    def _on_response(self, response: httpx.Response) -> None:
        remaining = response.headers.get("x-credits-remaining")
        if remaining is not None:
            try:
                self.last_known_balance = to_decimal(remaining, "X-Credits-Remaining")
            except ResponseFormatError:
                self.log.warning("Ignoring unreadable X-Credits-Remaining header %r", remaining[:40])
        cost = response.headers.get("x-credits-cost")
        if cost is not None:
            try:
                self.last_credits_cost = to_decimal(cost, "X-Credits-Cost")
            except ResponseFormatError:
                self.log.warning("Ignoring unreadable X-Credits-Cost header %r", cost[:40])

    def refresh_balance(self) -> CreditBalance:
        """Force LeadMagic to recompute the balance (``POST /v1/credits/refresh``) and return it."""
        return self._call_and_parse(LeadMagicVendor.refresh_request, self._balance_parser())  # type: ignore[no-any-return]

    def check_health(self) -> dict[str, Any]:
        """Validate the key with ``GET /v1/credits/health``.

        Returns the vendor's JSON on success; raises :class:`AuthenticationError` for a bad key.
        """
        payload = self.client.request_json(LeadMagicVendor.health_request)
        return payload if isinstance(payload, dict) else {"response": payload}

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Call any LeadMagic endpoint and return its decoded JSON.

        Errors map to the provider's exceptions (a 402 raises :class:`InsufficientCreditsError`).
        429 answers are always retried; 5xx answers and network errors only for idempotent calls, so a
        credit-charging POST is never sent twice.

        :param method: HTTP method
        :param path: path below the base URL, e.g. ``"/v1/people/email-finder"``
        :param params: query parameters
        :param json: JSON body
        :param idempotent: whether repeating the call is harmless (default: true for GET, HEAD, OPTIONS)
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "OPTIONS")
        call = ApiRequest(method, path, params=params, json=json, idempotent=idempotent)
        return self.client.request_json(call)

    def _test_call(self) -> CreditBalance:
        self.check_health()
        return self.get_balance()
