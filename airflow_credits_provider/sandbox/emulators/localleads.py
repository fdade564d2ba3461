"""LocalLeads' emulation: the balance and the paginated transaction ledger (``state.ledger``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.sandbox.emulators.base import REASONS, Emulator, Reply

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox.emulators.base import Request
    from airflow_credits_provider.sandbox.state import SandboxState


def _start_of_month_iso() -> str:
    from airflow_credits_provider.sandbox.state import iso, start_of_month

    return iso(start_of_month())


@dataclass
class LocalLeadsAccount:
    """LocalLeads' account state."""

    monthly: Decimal = Decimal(100)
    bonus: Decimal = Decimal(25)
    used: Decimal = Decimal(43)
    reset_day: int = 1
    last_reset_at: str = field(default_factory=_start_of_month_iso)
    meta_style: str = "offset"  # or "page"
    error_style: str = "simple"  # 401 shape: "simple" or "nest"


class LocalLeadsEmulator(Emulator):
    """LocalLeads: bearer keys, ``{"success": false, "error": ...}`` or NestJS-style 401s, a ledger."""

    key = "localleads"
    default_key = "ll_" + "0123456789abcdef" * 4
    account_type = LocalLeadsAccount

    def error(self, status: int, state: SandboxState, message: str | None = None, **options: Any) -> Reply:
        """``{"success": false, "error": ...}``, or the NestJS shape for 401 with ``style="nest"``."""
        style = options.get("style") or state.account("localleads").error_style
        if status == 401 and style == "nest":
            return Reply(
                401, {"statusCode": 401, "error": "Unauthorized", "message": "Invalid or expired token"}
            )
        default_message = REASONS.get(status, ("error", "Unexpected error."))[1]
        return Reply(status, {"success": False, "error": message or default_message})

    def corrupt(self, body: Any) -> Any:
        """An object where the balance belongs; ``"NaN"`` amounts in the ledger."""
        if isinstance(body, dict) and isinstance(body.get("data"), dict):
            return {**body, "data": {**body["data"], "availableCredits": {"value": 82}}}
        if isinstance(body, dict) and isinstance(body.get("data"), list):
            return {**body, "data": [{**r, "amount": "NaN"} for r in body["data"]]}
        return body

    def handle(self, request: Request, state: SandboxState) -> Reply:
        """LocalLeads: balance and the paginated transaction ledger."""
        if not state.key_is_valid("localleads", request.bearer()):
            return self.error(401, state, "Invalid API key")
        if request.method != "GET":
            return self.error(404, state, "Route not found")
        with state.lock:
            if request.path == "/api/v1/credits/balance":
                _apply_due_reset(state)
                a = state.account("localleads")
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
        return self.error(404, state, "Route not found")


def _apply_due_reset(state: SandboxState) -> None:
    """Renew monthly credits when the billing anniversary has passed, as LocalLeads does."""
    import pendulum

    from airflow_credits_provider.vendors.localleads import next_reset

    account = state.account("localleads")
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
        return EMULATOR.error(400, state, "limit and offset must be integers")
    if not 1 <= limit <= 100 or offset < 0:
        return EMULATOR.error(400, state, "limit must be between 1 and 100 and offset >= 0")
    data = state.ledger.page(offset, limit)
    total = len(state.ledger)
    if state.account("localleads").meta_style == "page":
        meta: dict[str, Any] = {"total": total, "page": offset // limit + 1, "limit": limit}
    else:
        meta = {"total": total, "limit": limit, "offset": offset}
    return Reply(200, {"success": True, "data": data, "meta": meta})


EMULATOR = LocalLeadsEmulator()
