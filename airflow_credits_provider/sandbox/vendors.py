"""The sandbox's emulation of each vendor's documented endpoints, bodies, headers and error shapes."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_credits_provider.sandbox.state import SandboxState

VENDORS = ("leadmagic", "localleads", "truemail")

_REASONS = {
    400: ("bad_request", "The request is malformed."),
    401: ("invalid_api_key", "Invalid API key. The key does not exist or is incorrect."),
    402: ("insufficient_credits", "Insufficient credits to complete this request."),
    403: ("plan_upgrade_required", "Your plan does not include this endpoint."),
    404: ("not_found", "The requested resource was not found."),
    422: ("unprocessable", "The request could not be processed."),
    429: ("rate_limited", "Rate limit exceeded"),
    500: ("internal_error", "Internal server error."),
    502: ("bad_gateway", "Bad gateway."),
    503: ("service_unavailable", "Service temporarily unavailable."),
}
_TRUEMAIL_MESSAGES = {
    400: "Bad request",
    401: "Invalid API key",
    402: "Insufficient account credits",
    403: "IP address not allowed",
    404: "Not found",
    422: "Unprocessable entity",
    429: "Rate limit exceeded",
}


@dataclass
class Request:
    """A parsed sandbox request (vendor-relative ``path``; lower-cased header names)."""

    vendor: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> Any:
        """The JSON body, or ``None`` when absent or invalid."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def bearer(self) -> str | None:
        """The bearer token, if any."""
        auth = self.headers.get("authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None


@dataclass
class Reply:
    """A response to send."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        """The body as bytes (JSON-encoded unless already bytes)."""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, default=_json_default).encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(type(value).__name__)


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def error_reply(
    vendor: str,
    status: int,
    state: SandboxState,
    message: str | None = None,
    *,
    code: str | None = None,
    style: str | None = None,
) -> Reply:
    """The vendor's documented error body for ``status``."""
    default_code, default_message = _REASONS.get(status, ("error", "Unexpected error."))
    code = code or default_code
    if vendor == "leadmagic":
        message = message or default_message
        style = style or state.leadmagic.error_style
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
                "meta": {"request_id": request_id, "timestamp": _now_iso()},
            },
            headers,
        )
    if vendor == "localleads":
        style = style or state.localleads.error_style
        if status == 401 and style == "nest":
            return Reply(
                401, {"statusCode": 401, "error": "Unauthorized", "message": "Invalid or expired token"}
            )
        return Reply(status, {"success": False, "error": message or default_message})
    body: dict[str, Any] = {"error": message or _TRUEMAIL_MESSAGES.get(status, default_message)}
    if status == 402:
        body["current_plan"] = state.truemail.plan
    return Reply(status, body)


# -- LeadMagic ---------------------------------------------------------------------------------------
def _leadmagic_liquid(state: SandboxState) -> Decimal:
    account = state.leadmagic
    return account.credits - account.credits_frozen


def _leadmagic_headers(state: SandboxState) -> dict[str, str]:
    with state.lock:
        remaining = _leadmagic_liquid(state)
    return {
        "X-Credits-Remaining": str(_json_default(remaining)),
        "RateLimit-Limit": "300",
        "RateLimit-Remaining": "299",
        "RateLimit-Reset": "60",
        "X-RateLimit-Limit": "300",
        "X-RateLimit-Remaining": "299",
    }


def _leadmagic_balance_body(state: SandboxState) -> dict[str, Any]:
    account = state.leadmagic
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


def leadmagic(request: Request, state: SandboxState) -> Reply:
    """LeadMagic: credits, refresh, health and two credit-charging data endpoints."""
    key = request.headers.get("x-api-key")
    if not key:
        return error_reply(
            "leadmagic",
            401,
            state,
            "Authentication required. Provide a valid API key in the X-API-Key header (case-insensitive).",
            code="missing_authentication",
        )
    if not state.key_is_valid("leadmagic", key):
        return error_reply("leadmagic", 401, state)
    route = (request.method, request.path)
    with state.lock:
        if route in (("GET", "/v1/credits"), ("POST", "/v1/credits/refresh")):
            return Reply(200, _leadmagic_balance_body(state), _leadmagic_headers(state))
        if route == ("GET", "/v1/credits/health"):
            return Reply(
                200, {"success": True, "status": "healthy", "authenticated": True}, _leadmagic_headers(state)
            )
        if route in (("POST", "/v1/people/email-finder"), ("POST", "/v1/people/email-validation")):
            return _leadmagic_charge(request, state)
    return error_reply("leadmagic", 404, state)


def _leadmagic_charge(request: Request, state: SandboxState) -> Reply:
    body = request.json()
    field_name = "email" if request.path.endswith("validation") else "domain"
    if not isinstance(body, dict) or not isinstance(body.get(field_name), str):
        return error_reply(
            "leadmagic", 400, state, f"Field '{field_name}' is required.", code="validation_error"
        )
    if _leadmagic_liquid(state) < 1:
        return error_reply("leadmagic", 402, state)
    value = body[field_name]
    found = not value.startswith("unknown")  # failures are free, as documented
    cost = 1 if found else 0
    state.leadmagic.credits -= cost
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


# -- LocalLeads --------------------------------------------------------------------------------------
def localleads(request: Request, state: SandboxState) -> Reply:
    """LocalLeads: balance and the paginated transaction ledger."""
    if not state.key_is_valid("localleads", request.bearer()):
        return error_reply("localleads", 401, state, "Invalid API key")
    if request.method != "GET":
        return error_reply("localleads", 404, state, "Route not found")
    with state.lock:
        if request.path == "/api/v1/credits/balance":
            _apply_due_reset(state)
            a = state.localleads
            return Reply(
                200,
                {
                    "success": True,
                    "data": {
                        "monthlyCredits": a.monthly,
                        "bonusCredits": a.bonus,
                        "usedCredits": a.used,
                        "availableCredits": a.monthly + a.bonus - a.used,
                        "resetDay": a.reset_day,
                        "lastResetAt": a.last_reset_at,
                    },
                },
            )
        if request.path == "/api/v1/credits/transactions":
            return _localleads_transactions(request, state)
    return error_reply("localleads", 404, state, "Route not found")


def _apply_due_reset(state: SandboxState) -> None:
    """Renew monthly credits when the billing anniversary has passed, as LocalLeads does."""
    import pendulum

    from airflow_credits_provider.vendors.localleads import next_reset

    account = state.localleads
    last = pendulum.parse(account.last_reset_at)
    assert isinstance(last, pendulum.DateTime)
    due = next_reset(last, account.reset_day)
    while pendulum.now("UTC") >= due:
        account.used = Decimal(0)
        account.last_reset_at = due.in_timezone("UTC").strftime("%Y-%m-%dT%H:%M:%S.000Z")
        due = next_reset(due, account.reset_day)


def _localleads_transactions(request: Request, state: SandboxState) -> Reply:
    try:
        limit = int(request.query.get("limit", "50"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        return error_reply("localleads", 400, state, "limit and offset must be integers")
    if not 1 <= limit <= 100 or offset < 0:
        return error_reply("localleads", 400, state, "limit must be between 1 and 100 and offset >= 0")
    data = state.ledger.page(offset, limit)
    total = len(state.ledger)
    if state.localleads.meta_style == "page":
        meta: dict[str, Any] = {"total": total, "page": offset // limit + 1, "limit": limit}
    else:
        meta = {"total": total, "limit": limit, "offset": offset}
    return Reply(200, {"success": True, "data": data, "meta": meta})


# -- TrueMail ----------------------------------------------------------------------------------------
def truemail(request: Request, state: SandboxState) -> Reply:
    """TrueMail: the usage endpoint."""
    if not state.key_is_valid("truemail", request.bearer()):
        return error_reply("truemail", 401, state)
    if (request.method, request.path) != ("GET", "/v1/usage"):
        return error_reply("truemail", 404, state)
    with state.lock:
        a = state.truemail
        return Reply(
            200,
            {
                "plan": a.plan,
                "period": {"start": a.period_start, "end": a.period_end},
                "credits": {"total": a.total, "locked": a.locked},
                "rate_limit": {"limit": a.rate_limit},
                "validation_types": json.loads(json.dumps(a.validation_types)),
            },
        )


# -- faults that rewrite a good answer ------------------------------------------------------------------
def wrong_types(vendor: str, body: Any) -> Any:
    """Corrupt the balance numbers of a successful body the way broken proxies and APIs do."""
    if not isinstance(body, dict):
        return body
    if vendor == "leadmagic" and "credits" in body:
        return {**body, "credits": True, "credits_liquid": "plenty"}
    if vendor == "localleads" and isinstance(body.get("data"), dict):
        return {**body, "data": {**body["data"], "availableCredits": {"value": 82}}}
    if vendor == "localleads" and isinstance(body.get("data"), list):
        return {**body, "data": [{**r, "amount": "NaN"} for r in body["data"]]}
    if vendor == "truemail" and isinstance(body.get("credits"), dict):
        return {**body, "credits": {"total": None, "locked": "x"}}
    if vendor not in VENDORS:  # a generic preset: every number becomes a boolean
        return _numbers_to_booleans(body)
    return body


def _numbers_to_booleans(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _numbers_to_booleans(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_numbers_to_booleans(v) for v in node]
    if isinstance(node, (int, float, Decimal)) and not isinstance(node, bool):
        return True
    if isinstance(node, str) and node.lstrip("-").replace(".", "", 1).isdigit():
        return True
    return node


HANDLERS: dict[str, Callable[[Request, SandboxState], Reply]] = {
    "leadmagic": leadmagic,
    "localleads": localleads,
    "truemail": truemail,
}


def all_handlers() -> dict[str, Callable[[Request, SandboxState], Reply]]:
    """The named vendors' handlers plus one per generic preset, by URL prefix."""
    from airflow_credits_provider.sandbox.presets import PRESET_APIS, preset_handler

    return {**HANDLERS, **{name: preset_handler(name) for name in PRESET_APIS}}
