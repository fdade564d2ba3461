"""LocalLeads by PostOrbit: balance and the paginated credit ledger, ``Authorization: Bearer``."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import ResponseFormatError
from airflow_credits_provider.models import CreditBalance, CreditTransaction, TransactionPage
from airflow_credits_provider.parsing import (
    MAX_MAGNITUDE,
    datetime_at,
    decimal_at,
    describe,
    get_path,
    object_at,
    to_decimal,
    to_utc_datetime,
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
        records, total = self.page_records(payload)
        return TransactionPage(
            transactions=self.parse_records(records), total=total, offset=offset, limit=limit
        )

    @staticmethod
    def page_records(payload: Any) -> tuple[list[Any], int | None]:
        """A page's raw records (``data``) and the ledger's size (``meta.total``; ``None``: not given).

        Enough to decide where the next page starts, before any record is read.
        """
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
        return records, total

    @classmethod
    def parse_records(cls, records: list[Any]) -> list[CreditTransaction]:
        """Read a page's records (see :meth:`parse_transaction`)."""
        parse = cls.parse_transaction
        return [parse(record, index) for index, record in enumerate(records)]

    @staticmethod
    def parse_transaction(record: Any, index: int = 0) -> CreditTransaction:
        """Read one ledger record; ``type`` is kept as free text (top-ups and coupons exist).

        This runs once per transaction, a million times in a backfill: a record in the documented shape
        (string id, whole-number amount, UTC time) is checked with a handful of type tests; any other
        record goes through :func:`_parse_transaction_any`, which accepts every shape the API may send
        and names what is wrong with one it cannot.
        """
        if type(record) is dict:
            tx_id, tx_type, amount = record.get("id"), record.get("type"), record.get("amount")
            description = record.get("description")
            if (
                type(tx_id) is str
                and tx_id
                and type(tx_type) is str
                and type(amount) is int
                and -_AMOUNT_LIMIT < amount < _AMOUNT_LIMIT
                and (description is None or type(description) is str)
            ):
                return CreditTransaction(
                    id=tx_id,
                    type=tx_type,
                    amount=Decimal(amount),
                    description=description,
                    created_at=to_utc_datetime(record.get("createdAt"), "createdAt"),
                    raw=record,
                )
        return _parse_transaction_any(record, index)


#: Whole-number amounts below this need no further check (see ``parsing.amount_problem``).
_AMOUNT_LIMIT = 10 ** (MAX_MAGNITUDE + 1)


def _parse_transaction_any(record: Any, index: int) -> CreditTransaction:
    """Read a ledger record of any shape the API may send, or say exactly what is wrong with it."""
    if not isinstance(record, dict):
        raise ResponseFormatError(f"transaction {index} should be an object but is {describe(record)}")
    tx_id, tx_type, description = record.get("id"), record.get("type"), record.get("description")
    where = f"transaction {index}: field"
    if isinstance(tx_id, bool) or not isinstance(tx_id, (str, int)) or tx_id == "":
        raise ResponseFormatError(f"{where} 'id' should be a string but is {describe(tx_id)}")
    if not isinstance(tx_type, str):
        raise ResponseFormatError(f"{where} 'type' should be a string but is {describe(tx_type)}")
    if description is not None and not isinstance(description, str):
        raise ResponseFormatError(f"{where} 'description' should be a string but is {describe(description)}")
    if "amount" not in record:
        raise ResponseFormatError(f"{where} 'amount' is missing")
    return CreditTransaction(
        id=str(tx_id),
        type=tx_type,
        amount=to_decimal(record["amount"], "amount"),
        description=description,
        created_at=to_utc_datetime(record.get("createdAt"), "createdAt"),
        raw=record,
    )
