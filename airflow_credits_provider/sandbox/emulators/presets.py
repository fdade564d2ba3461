"""The sandbox's emulation of the generic presets: each vendor's balance answer and its bad-key answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.sandbox.emulators.base import Emulator, Reply

if TYPE_CHECKING:
    from collections.abc import Callable
    from decimal import Decimal

    from airflow_credits_provider.sandbox.emulators.base import Request
    from airflow_credits_provider.sandbox.state import SandboxState


def _num(value: Decimal) -> Any:
    """An amount as a JSON number (``Reply`` writes decimals exactly)."""
    return value


def _text(value: Decimal) -> str:
    """An amount as a numeric string, as some vendors send it."""
    return f"{value.normalize():f}"


@dataclass(frozen=True)
class PresetApi:
    """One emulated API: its balance request, how it reads the key, and its two documented answers."""

    method: str
    path: str
    auth: str  # header:<name>, bearer, query:<name>
    ok: Callable[[Decimal], dict[str, Any]]
    bad_key_status: int
    bad_key: dict[str, Any]
    #: Documented answers that stand for an HTTP status (NeverBounce answers every error with HTTP
    #: 200): what the ``status`` and ``rate_limit`` faults serve instead of a plain error body.
    errors: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)

    def key_of(self, request: Request) -> str | None:
        """The key the request carries, the way this vendor reads it."""
        kind, _, name = self.auth.partition(":")
        if kind == "bearer":
            return request.bearer()
        if kind == "query":
            return request.query.get(name)
        return request.headers.get(name.lower())


def _next_month_date() -> str:
    """The first of next month (``2027-01-01``): the sandbox's Hunter plan always renews then."""
    from airflow_credits_provider.sandbox.state import start_of_next_month

    return f"{start_of_next_month():%Y-%m-%d}"


PRESET_APIS: dict[str, PresetApi] = {
    "zerobounce": PresetApi(
        "GET", "/v2/getcredits", "query:api_key", lambda b: {"Credits": _text(b)}, 200, {"Credits": "-1"}
    ),
    "hunter": PresetApi(
        "GET",
        "/v2/account",
        "query:api_key",
        lambda b: {
            "data": {
                "email": "ops@example.com",
                "plan_name": "Starter",
                "reset_date": _next_month_date(),
                "requests": {
                    "searches": {"used": 10, "available": 500, "remaining": 490},
                    "verifications": {"used": 5, "available": 1000, "remaining": 995},
                    "credits": {"used": 12.5, "available": 1000, "remaining": _num(b)},
                },
            }
        },
        401,
        {
            "errors": [
                {
                    "id": "authentication_failed",
                    "code": 401,
                    "details": "No user found for the API key supplied",
                }
            ]
        },
    ),
    "neverbounce": PresetApi(
        "GET",
        "/v4/account/info",
        "query:key",
        lambda b: {
            "status": "success",
            "billing_type": "default",
            "credits_info": {
                "paid_credits_used": 1200,
                "free_credits_used": 0,
                "paid_credits_remaining": _num(b - 100),
                "free_credits_remaining": 100,
            },
            "job_counts": {"completed": 3, "under_review": 0, "queued": 0, "processing": 0},
            "execution_time": 102,
        },
        200,
        {
            "status": "auth_failure",
            "message": "We were unable to authenticate your request. The API key is invalid.",
            "execution_time": 5,
        },
        errors={
            400: (200, {"status": "general_failure", "message": "Missing required parameter"}),
            403: (200, {"status": "bad_referrer", "message": "Request not allowed from this referrer"}),
            429: (200, {"status": "throttle_triggered", "message": "Too many requests in a short time"}),
            503: (200, {"status": "temp_unavail", "message": "Service temporarily unavailable"}),
        },
    ),
    "bouncer": PresetApi(
        "GET",
        "/v1.1/credits",
        "header:x-api-key",
        lambda b: {"credits": _num(b)},
        401,
        {"status": 401, "error": "Unauthorized", "message": "user not found"},
    ),
    "dropcontact": PresetApi(
        "GET",
        "/v1/account/credits",
        "header:X-Access-Token",
        lambda b: {"credits": _num(b)},
        401,
        {"error": True, "reason": "Invalid access token"},
    ),
    "clearout": PresetApi(
        "GET",
        "/v2/email_verify/getcredits",
        "bearer",
        lambda b: {
            "status": "success",
            "data": {"available_credits": _num(b), "credits": {"available": _num(b)}},
        },
        401,
        {"status": "failed", "error": {"code": 1000, "message": "Invalid API token"}},
    ),
    "emailable": PresetApi(
        "GET",
        "/v1/account",
        "query:api_key",
        lambda b: {"owner_email": "ops@example.com", "available_credits": _num(b)},
        401,
        {"message": "Invalid API key"},
    ),
    "debounce": PresetApi(
        "GET",
        "/v1/balance/",
        "query:api",
        lambda b: {"success": "1", "balance": _text(b)},
        200,
        {"success": "0", "debounce": {"error": "Wrong API key"}},
    ),
    "millionverifier": PresetApi(
        "GET",
        "/api/v3/credits",
        "query:api",
        lambda b: {"credits": _num(b), "bulk_credits": 0, "renewing_credits": 0, "plan": 0},
        200,
        {"result": "error", "error": "Apikey not found"},
    ),
    "findymail": PresetApi(
        "GET",
        "/api/credits",
        "bearer",
        lambda b: {"credits": _num(b), "verifier_credits": 300},
        401,
        {"message": "Unauthenticated."},
    ),
    "prospeo": PresetApi(
        "POST",
        "/account-information",
        "header:X-KEY",
        lambda b: {
            "error": False,
            "response": {"current_plan": "STARTER", "remaining_credits": _num(b), "used_credits": 25},
        },
        401,
        {"error": True, "message": "INVALID_API_KEY"},
    ),
    "enrichlayer": PresetApi(
        "GET",
        "/api/v2/credit-balance",
        "bearer",
        lambda b: {"credit_balance": _num(b)},
        401,
        {"code": 401, "description": "Invalid API Key", "name": "Unauthorized"},
    ),
}


class PresetEmulator(Emulator):
    """One generic preset's API: its balance (``state.account(name).credits``) and bad-key answers."""

    preset = True

    def __init__(self, name: str, api: PresetApi) -> None:
        self.key = name
        self.default_key = f"{name}_sandbox_key_0123456789"
        self.api = api
        super().__init__()

    def error(self, status: int, state: SandboxState, message: str | None = None, **options: Any) -> Reply:
        """The vendor's documented answer for ``status`` where it has one (NeverBounce: HTTP 200)."""
        if status in self.api.errors:
            http_status, body = self.api.errors[status]
            return Reply(http_status, body)
        return super().error(status, state, message, **options)

    def handle(self, request: Request, state: SandboxState) -> Reply:
        """The documented balance answer, or the documented bad-key answer."""
        api = self.api
        if (request.method, request.path) != (api.method, api.path):
            return Reply(404, {"message": "Not found"})
        if not state.key_is_valid(self.key, api.key_of(request)):
            return Reply(api.bad_key_status, api.bad_key)
        with state.lock:
            return Reply(200, api.ok(state.account(self.key).credits))


EMULATORS = [PresetEmulator(name, api) for name, api in PRESET_APIS.items()]
