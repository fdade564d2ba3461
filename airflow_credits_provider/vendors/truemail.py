"""TrueMail: ``GET /v1/usage`` with ``Authorization: Bearer``; per-validation-type prices."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import ResponseFormatError
from airflow_credits_provider.models import CreditBalance, UnitPrice
from airflow_credits_provider.parsing import (
    bool_at,
    datetime_at,
    decimal_at,
    describe,
    get_path,
    text_at,
)
from airflow_credits_provider.vendors.base import ApiRequest, BearerAuth, CreditVendor, VendorErrorDetail

if TYPE_CHECKING:
    import httpx
    from pendulum import DateTime


class TrueMailVendor(CreditVendor):
    """TrueMail's usage API.

    ``credits.total`` is the spendable balance (``credits.locked`` is already deducted). The billing
    period's end is when plan credits renew. Errors are ``{"error": "..."}``, sometimes with context
    such as ``current_plan``.
    """

    key = "truemail"
    display_name = "TrueMail"
    default_base_url = "https://api.truemail.app"
    balance_request = ApiRequest("GET", "/v1/usage")
    key_hint = "tm_live_..."
    hook_class_name = "airflow_credits_provider.hooks.truemail.TrueMailHook"

    def auth(self, api_key: str) -> httpx.Auth:
        """Send the key as a bearer token."""
        return BearerAuth(api_key)

    def parse_error(self, payload: Any) -> VendorErrorDetail:
        """Read ``{"error": "...", "current_plan": ...}``."""
        if not isinstance(payload, dict):
            return VendorErrorDetail()
        message = payload.get("error") if isinstance(payload.get("error"), str) else None
        message = message or (payload.get("message") if isinstance(payload.get("message"), str) else None)
        plan = payload.get("current_plan")
        if message and isinstance(plan, str) and plan:
            message = f"{message} (current plan: {plan})"
        return VendorErrorDetail(message=message)

    def parse_balance(self, payload: Any, fetched_at: DateTime) -> CreditBalance:
        """Read ``plan``, ``period``, ``credits`` and ``validation_types``."""
        available = decimal_at(payload, "credits.total")
        assert available is not None
        locked = decimal_at(payload, "credits.locked", required=False)
        period_end = datetime_at(payload, "period.end")
        return CreditBalance(
            vendor=self.key,
            vendor_name=self.display_name,
            available=available,
            total=available + locked if locked is not None else available,
            locked=locked,
            locked_reason="held for bulk validations in progress" if locked else None,
            plan=text_at(payload, "plan"),
            period_start=datetime_at(payload, "period.start"),
            period_end=period_end,
            next_reset_at=period_end,
            unit_prices=self.parse_validation_types(get_path(payload, "validation_types", None)),
            fetched_at=fetched_at,
            raw=payload,
        )

    @staticmethod
    def parse_validation_types(raw: Any) -> dict[str, UnitPrice]:
        """Read ``validation_types.<name>.{credits, available, upgrade_required}``."""
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise ResponseFormatError(f"field 'validation_types' should be an object but is {describe(raw)}")
        prices = {}
        for name, spec in raw.items():
            where = f"validation_types.{name}"
            if not isinstance(spec, dict):
                raise ResponseFormatError(f"field {where!r} should be an object but is {describe(spec)}")
            credits = decimal_at(spec, "credits")
            assert credits is not None
            if credits < 0:
                raise ResponseFormatError(f"field '{where}.credits' should not be negative")
            available = bool_at(spec, "available", default=True)
            prices[name] = UnitPrice(
                name=name,
                credits=credits,
                available=available,
                upgrade_required=text_at(spec, "upgrade_required"),
            )
        return prices
