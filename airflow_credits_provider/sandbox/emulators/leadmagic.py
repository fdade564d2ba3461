"""LeadMagic's emulation: credits, refresh, health and two credit-charging data endpoints."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.sandbox.emulators.base import REASONS, Emulator, Reply, now_iso

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox.emulators.base import Request
    from airflow_credits_provider.sandbox.state import SandboxState


@dataclass
class LeadMagicAccount:
    """LeadMagic's account state (``credits_liquid`` = ``credits`` - ``credits_frozen``)."""

    credits: Decimal = Decimal("15432.5")
    credits_frozen: Decimal = Decimal(0)
    freeze_message: str | None = None
    error_style: str = "envelope"
    #: whether GET /v1/credits returns the rich body (credits_liquid etc.) or only {"credits": n}
    rich_body: bool = True


class LeadMagicEmulator(Emulator):
    """LeadMagic: ``X-API-Key``, an error envelope or RFC 9457 problems, ``X-Credits-Remaining``."""

    key = "leadmagic"
    default_key = "lm_sandbox_0123456789abcdef"
    account_type = LeadMagicAccount

    def error(self, status: int, state: SandboxState, message: str | None = None, **options: Any) -> Reply:
        """The envelope (or, with ``style="rfc9457"``, a problem document), with ``X-Request-Id``."""
        default_code, default_message = REASONS.get(status, ("error", "Unexpected error."))
        code = options.get("code") or default_code
        message = message or default_message
        style = options.get("style") or state.account("leadmagic").error_style
        request_id = str(uuid.uuid4())
        headers = {"X-Request-Id": request_id, **_leadmagic_headers(state)}
        if style == "rfc9457":
            return Reply(
                status,
                {
                    "type": f"https://api.leadmagic.io/errors/{code}",
                    "title": message,
                    "status": status,
                    "detail": f"See https://docs.leadmagic.io for {code}.",
                    "instance": request_id,
                },
                headers,
                "application/problem+json",
            )
        return Reply(
            status,
            {
                "success": False,
                "errors": [
                    {
                        "type": f"https://api.leadmagic.io/errors/{code}",
                        "title": message,
                        "status": status,
                        "code": code,
                        "docs": "https://docs.leadmagic.io/api-reference/authentication",
                    }
                ],
                "meta": {"request_id": request_id, "timestamp": now_iso()},
            },
            headers,
        )

    def corrupt(self, body: Any) -> Any:
        """A boolean and a word where the numbers belong."""
        if isinstance(body, dict) and "credits" in body:
            return {**body, "credits": True, "credits_liquid": "plenty"}
        return body

    def handle(self, request: Request, state: SandboxState) -> Reply:
        """LeadMagic: credits, refresh, health and two credit-charging data endpoints."""
        key = request.headers.get("x-api-key")
        if not key:
            return self.error(
                401,
                state,
                "Authentication required. Provide a valid API key in the X-API-Key header "
                "(case-insensitive).",
                code="missing_authentication",
            )
        if not state.key_is_valid("leadmagic", key):
            return self.error(401, state)
        route = (request.method, request.path)
        with state.lock:
            if route in (("GET", "/v1/credits"), ("POST", "/v1/credits/refresh")):
                return Reply(200, _leadmagic_balance_body(state), _leadmagic_headers(state))
            if route == ("GET", "/v1/credits/health"):
                return Reply(
                    200,
                    {"success": True, "status": "healthy", "authenticated": True},
                    _leadmagic_headers(state),
                )
            if route in (("POST", "/v1/people/email-finder"), ("POST", "/v1/people/email-validation")):
                return _leadmagic_charge(request, state)
        return self.error(404, state)


def _leadmagic_liquid(state: SandboxState) -> Decimal:
    account: LeadMagicAccount = state.account("leadmagic")
    return account.credits - account.credits_frozen


def _leadmagic_headers(state: SandboxState) -> dict[str, str]:
    with state.lock:
        remaining = _leadmagic_liquid(state)
    return {
        "X-Credits-Remaining": f"{remaining.normalize():f}",
        "RateLimit-Limit": "300",
        "RateLimit-Remaining": "299",
        "RateLimit-Reset": "60",
        "X-RateLimit-Limit": "300",
        "X-RateLimit-Remaining": "299",
    }


def _leadmagic_balance_body(state: SandboxState) -> dict[str, Any]:
    account = state.account("leadmagic")
    if not account.rich_body:
        return {"credits": account.credits}
    frozen = account.credits_frozen > 0
    return {
        "credits": account.credits,
        "is_frozen": frozen,
        "credits_frozen": account.credits_frozen,
        "credits_liquid": _leadmagic_liquid(state),
        "credit_freeze_message": account.freeze_message if frozen else None,
        "credit_freeze_plan_hint": "Upgrade to unfreeze credits" if frozen else None,
    }


def _leadmagic_charge(request: Request, state: SandboxState) -> Reply:
    body = request.json()
    field_name = "email" if request.path.endswith("validation") else "domain"
    if not isinstance(body, dict) or not isinstance(body.get(field_name), str):
        return EMULATOR.error(400, state, f"Field '{field_name}' is required.", code="validation_error")
    if _leadmagic_liquid(state) < 1:
        return EMULATOR.error(402, state)
    value = body[field_name]
    found = not value.startswith("unknown")  # failures are free, as documented
    cost = 1 if found else 0
    state.account("leadmagic").credits -= cost
    digest = hashlib.sha1(value.encode()).hexdigest()[:6]
    result: dict[str, Any] = (
        {
            "email": f"{body.get('first_name', 'lead')}.{digest}@{value}",
            "status": "valid" if found else "not_found",
        }
        if field_name == "domain"
        else {"email": value, "email_status": "valid" if found else "unknown"}
    )
    result["credits_consumed"] = cost
    return Reply(200, result, {**_leadmagic_headers(state), "X-Credits-Cost": str(cost)})


EMULATOR = LeadMagicEmulator()
