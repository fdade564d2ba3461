"""TrueMail's emulation: the usage endpoint with per-validation-type prices."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.sandbox.emulators.base import REASONS, Emulator, Reply

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox.emulators.base import Request
    from airflow_credits_provider.sandbox.state import SandboxState


def _month_bound(months_ahead: int) -> str:
    """The start of this (0) or the next (1) month, as TrueMail prints period bounds.

    The sandbox's period is always the current one, so its renewal is never already past.
    """
    from airflow_credits_provider.sandbox.state import start_of_month, start_of_next_month

    moment = start_of_next_month() if months_ahead else start_of_month()
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_MESSAGES = {
    400: "Bad request",
    401: "Invalid API key",
    402: "Insufficient account credits",
    403: "IP address not allowed",
    404: "Not found",
    422: "Unprocessable entity",
    429: "Rate limit exceeded",
}


@dataclass
class TrueMailAccount:
    """TrueMail's account state."""

    plan: str = "premium"
    total: Decimal = Decimal(45230)
    locked: Decimal = Decimal(1500)
    period_start: str = field(default_factory=lambda: _month_bound(0))
    period_end: str = field(default_factory=lambda: _month_bound(1))
    rate_limit: int = 300
    validation_types: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "mx": {"credits": 1, "available": True},
            "smtp": {"credits": 10, "available": True},
        }
    )


class TrueMailEmulator(Emulator):
    """TrueMail: bearer keys, ``{"error": ...}`` bodies (with ``current_plan`` on 402)."""

    key = "truemail"
    default_key = "tm_live_sandbox_0123456789"
    account_type = TrueMailAccount

    def error(self, status: int, state: SandboxState, message: str | None = None, **options: Any) -> Reply:
        """``{"error": ...}``, with the plan on 402."""
        default = REASONS.get(status, ("error", "Unexpected error."))[1]
        body: dict[str, Any] = {"error": message or _MESSAGES.get(status, default)}
        if status == 402:
            body["current_plan"] = state.account("truemail").plan
        return Reply(status, body)

    def corrupt(self, body: Any) -> Any:
        """A null and a word where the credits belong."""
        if isinstance(body, dict) and isinstance(body.get("credits"), dict):
            return {**body, "credits": {"total": None, "locked": "x"}}
        return body

    def handle(self, request: Request, state: SandboxState) -> Reply:
        """TrueMail: the usage endpoint."""
        if not state.key_is_valid("truemail", request.bearer()):
            return self.error(401, state)
        if (request.method, request.path) != ("GET", "/v1/usage"):
            return self.error(404, state)
        with state.lock:
            a = state.account("truemail")
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


EMULATOR = TrueMailEmulator()
