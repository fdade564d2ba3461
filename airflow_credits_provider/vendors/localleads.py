"""LocalLeads by PostOrbit: balance and the paginated credit ledger, ``Authorization: Bearer``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import ResponseFormatError
from airflow_credits_provider.models import CreditBalance, CreditTransaction, TransactionPage
from airflow_credits_provider.parsing import (
    datetime_at,
    decimal_at,
    describe,
    get_path,
    object_at,
    to_datetime,
    to_decimal,
)
from airflow_credits_provider.vendors.base import ApiRequest, BearerAuth, CreditVendor, VendorErrorDetail

if TYPE_CHECKING:
    import httpx
    from pendulum import DateTime

#: LocalLeads' documented maximum page size.
MAX_PAGE_SIZE = 100


def next_reset(last_reset_at: DateTime, reset_day: int) -> DateTime:
    """Return the first reset after ``last_reset_at`` on the billing anniversary ``reset_day``.

    In months shorter than ``reset_day`` the reset falls on the month's last day (31 -> Feb 28/29).
    """
    base = last_reset_at.start_of("month").add(months=1)
    day = min(reset_day, base.days_in_month)
    return base.set(
        day=day, hour=last_reset_at.hour, minute=last_reset_at.minute, second=last_reset_at.second
    )


class LocalLeadsVendor(CreditVendor):
    """LocalLeads' credit API.

    ``availableCredits`` (monthly + bonus - used) is the spendable balance. Errors come as
    ``{"success": false, "error": "..."}`` or ``{"statusCode": 401, "error": "Unauthorized",
    "message": "..."}``.
    """

    key = "localleads"
    display_name = "LocalLeads"
    default_base_url = "https://leadsapi.postorbit.io"
    balance_request = ApiRequest("GET", "/api/v1/credits/balance")
    transactions_path = "/api/v1/credits/transactions"
    key_hint = "ll_ followed by 64 hex characters"
    hook_class_name = "airflow_credits_provider.hooks.localleads.LocalLeadsHook"
    max_page_size = MAX_PAGE_SIZE

    def auth(self, api_key: str) -> httpx.Auth:
        """Send the key as a bearer token."""
        return BearerAuth(api_key)

    def error_in_success(self, payload: Any) -> tuple[int, VendorErrorDetail] | None:
        """A 2xx body with ``"success": false`` is an error all the same."""
        if isinstance(payload, dict) and payload.get("success") is False:
            return 400, self.parse_error(payload)
        return None

    def parse_error(self, payload: Any) -> VendorErrorDetail:
        """Read both documented error shapes."""
        if not isinstance(payload, dict):
            return VendorErrorDetail()
        message, error = payload.get("message"), payload.get("error")
        if isinstance(message, str) and message:
            return VendorErrorDetail(message=message, code=error if isinstance(error, str) else None)
        return VendorErrorDetail(message=error if isinstance(error, str) and error else None)

    def parse_balance(self, payload: Any, fetched_at: DateTime) -> CreditBalance:
        """Read ``data``: monthly, bonus, used and available credits, ``resetDay`` and ``lastResetAt``."""
        data = object_at(payload, "data")
        monthly = decimal_at(data, "monthlyCredits", required=False)
        bonus = decimal_at(data, "bonusCredits", required=False)
        used = decimal_at(data, "usedCredits", required=False)
        available = decimal_at(data, "availableCredits")
        assert available is not None
        last_reset = datetime_at(data, "lastResetAt")
        reset_day = get_path(data, "resetDay", None)
        if reset_day is not None and (
            isinstance(reset_day, bool) or not isinstance(reset_day, int) or not 1 <= reset_day <= 31
        ):
            raise ResponseFormatError(
                f"field 'resetDay' should be a day of month but is {describe(reset_day)}"
            )
        total = monthly + bonus if monthly is not None and bonus is not None else None
        return CreditBalance(
            vendor=self.key,
            vendor_name=self.display_name,
            available=available,
            total=total,
            monthly=monthly,
            bonus=bonus,
            used=used,
            period_start=last_reset,
            next_reset_at=next_reset(last_reset, reset_day) if last_reset and reset_day else None,
            fetched_at=fetched_at,
            raw=payload,
        )

    def transactions_request(self, offset: int, limit: int) -> ApiRequest:
        """The request for one ledger page (offset/limit paging, newest first)."""
        return ApiRequest("GET", self.transactions_path, params={"limit": limit, "offset": offset})

    def parse_transactions(self, payload: Any, offset: int, limit: int) -> TransactionPage:
        """Read one page: ``data`` and ``meta`` (``{total, limit, offset}`` or ``{total, page, limit}``)."""
        records = get_path(payload, "data")
        if not isinstance(records, list):
            raise ResponseFormatError(f"field 'data' should be an array but is {describe(records)}")
        meta = get_path(payload, "meta", None)
        total: int | None = None
        if isinstance(meta, dict) and meta.get("total") is not None:
            raw_total = to_decimal(meta["total"], "meta.total")
            if raw_total != raw_total.to_integral_value() or raw_total < 0:
                raise ResponseFormatError(f"field 'meta.total' should be a count but is {meta['total']!r}")
            total = int(raw_total)
        return TransactionPage(
            transactions=[self.parse_transaction(r, i) for i, r in enumerate(records)],
            total=total,
            offset=offset,
            limit=limit,
        )

    @staticmethod
    def parse_transaction(record: Any, index: int = 0) -> CreditTransaction:
        """Read one ledger record; ``type`` is kept as free text (top-ups and coupons exist)."""
        if not isinstance(record, dict):
            raise ResponseFormatError(f"transaction {index} should be an object but is {describe(record)}")
        # Direct look-ups: this runs once per transaction, a million times in a backfill.
        tx_id, tx_type, description = record.get("id"), record.get("type"), record.get("description")
        where = f"transaction {index}: field"
        if isinstance(tx_id, bool) or not isinstance(tx_id, (str, int)) or tx_id == "":
            raise ResponseFormatError(f"{where} 'id' should be a string but is {describe(tx_id)}")
        if not isinstance(tx_type, str):
            raise ResponseFormatError(f"{where} 'type' should be a string but is {describe(tx_type)}")
        if description is not None and not isinstance(description, str):
            raise ResponseFormatError(
                f"{where} 'description' should be a string but is {describe(description)}"
            )
        if "amount" not in record:
            raise ResponseFormatError(f"{where} 'amount' is missing")
        return CreditTransaction(
            id=str(tx_id),
            type=tx_type,
            amount=to_decimal(record["amount"], "amount"),
            description=description,
            created_at=to_datetime(record.get("createdAt"), "createdAt"),
            raw=record,
        )
