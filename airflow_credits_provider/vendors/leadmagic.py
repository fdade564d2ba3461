"""LeadMagic: ``GET /v1/credits`` with the key in ``X-API-Key``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import ResponseFormatError
from airflow_credits_provider.models import CreditBalance
from airflow_credits_provider.parsing import bool_at, decimal_at, object_at, text_at
from airflow_credits_provider.vendors.base import ApiRequest, CreditVendor, HeaderKeyAuth, VendorErrorDetail

if TYPE_CHECKING:
    import httpx
    from pendulum import DateTime


class LeadMagicVendor(CreditVendor):
    """LeadMagic's credit API.

    Spendable credits are ``credits_liquid`` when present (part of a balance can be frozen), else
    ``credits``. Errors come as an envelope (``{"success": false, "errors": [...], "meta": {...}}``)
    or as RFC 9457 problem details; both are read.
    """

    key = "leadmagic"
    display_name = "LeadMagic"
    default_base_url = "https://api.leadmagic.io"
    balance_request = ApiRequest("GET", "/v1/credits")
    refresh_request = ApiRequest("POST", "/v1/credits/refresh")
    health_request = ApiRequest("GET", "/v1/credits/health")
    key_hint = "LeadMagic dashboard > Settings > API"
    hook_class_name = "airflow_credits_provider.hooks.leadmagic.LeadMagicHook"

    def auth(self, api_key: str) -> httpx.Auth:
        """Send the key in ``X-API-Key``."""
        return HeaderKeyAuth("X-API-Key", api_key)

    def parse_balance(self, payload: Any, fetched_at: DateTime) -> CreditBalance:
        """Read ``credits`` / ``credits_liquid`` / ``credits_frozen``."""
        if not isinstance(payload, dict):
            raise ResponseFormatError("expected a JSON object")
        # A refresh may wrap the balance in {"success": true, "data": {...}}.
        body = object_at(payload, "data") if "credits" not in payload and "data" in payload else payload
        total = decimal_at(body, "credits")
        liquid = decimal_at(body, "credits_liquid", required=False)
        frozen = decimal_at(body, "credits_frozen", required=False)
        is_frozen = bool_at(body, "is_frozen", default=False)
        reason = text_at(body, "credit_freeze_message")
        if is_frozen and not reason:
            reason = "LeadMagic reports the balance as frozen"
        return CreditBalance(
            vendor=self.key,
            vendor_name=self.display_name,
            available=liquid if liquid is not None else total,  # type: ignore[arg-type]
            total=total,
            locked=frozen,
            locked_reason=reason,
            fetched_at=fetched_at,
            raw=payload,
        )

    def parse_error(self, payload: Any) -> VendorErrorDetail:
        """Read the error envelope or an RFC 9457 problem."""
        if not isinstance(payload, dict):
            return VendorErrorDetail()
        meta: dict[str, Any] = payload["meta"] if isinstance(payload.get("meta"), dict) else {}
        request_id = meta.get("request_id") or payload.get("request_id") or payload.get("instance")
        errors = payload.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return VendorErrorDetail(
                message=_text(first.get("title")) or _text(first.get("detail")),
                code=_text(first.get("code")),
                request_id=_text(request_id),
            )
        title, detail = _text(payload.get("title")), _text(payload.get("detail"))
        message = f"{title}: {detail}" if title and detail else (title or detail)
        code = _text(payload.get("code"))
        if not code and isinstance(payload.get("type"), str):
            code = payload["type"].rstrip("/").rsplit("/", 1)[-1] or None
        return VendorErrorDetail(
            message=message or _text(payload.get("message")) or _text(payload.get("error")),
            code=code,
            request_id=_text(request_id),
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
