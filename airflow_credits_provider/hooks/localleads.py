"""LocalLeads hook: balance and the paginated credit ledger."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_credits_provider.hooks.base import CreditApiHook
from airflow_credits_provider.vendors.base import ApiRequest
from airflow_credits_provider.vendors.localleads import MAX_PAGE_SIZE, LocalLeadsVendor

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_credits_provider.models import CreditTransaction
    from airflow_credits_provider.vendors.localleads import TransactionPage


class LocalLeadsHook(CreditApiHook):
    """Talk to LocalLeads' API with the key from an Airflow connection of type ``localleads``.

    Besides :meth:`get_balance`, it pages through the credit ledger with :meth:`iter_transactions`.

    :param credit_conn_id: the Airflow connection id (default ``localleads_default``)
    """

    conn_type = "localleads"
    default_conn_name = "localleads_default"
    hook_name = "LocalLeads"
    vendor_class = LocalLeadsVendor

    def get_transactions_page(self, offset: int = 0, limit: int = MAX_PAGE_SIZE) -> TransactionPage:
        """Fetch one page of the ledger, newest first.

        :param offset: records to skip
        :param limit: page size, 1 to 100
        """
        _check_page(offset, limit)
        vendor = LocalLeadsVendor()
        call = ApiRequest("GET", vendor.transactions_path, params={"limit": limit, "offset": offset})
        return self._call_and_parse(call, lambda payload: vendor.parse_transactions(payload, offset, limit))  # type: ignore[no-any-return]

    def iter_transactions(
        self, page_size: int = MAX_PAGE_SIZE, *, offset: int = 0, max_pages: int | None = None
    ) -> Iterator[CreditTransaction]:
        """Yield the ledger's transactions, newest first, one page at a time.

        Stops at the end of the ledger (a short or empty page, or ``offset`` reaching ``meta.total``).

        :param page_size: records per request, 1 to 100
        :param offset: records to skip before the first
        :param max_pages: stop after this many requests
        """
        _check_page(offset, page_size)
        pages = 0
        with self.client.session():
            while max_pages is None or pages < max_pages:
                page = self.get_transactions_page(offset, page_size)
                pages += 1
                yield from page.transactions
                offset += len(page.transactions)
                if len(page.transactions) < page_size or (page.total is not None and offset >= page.total):
                    return


def _check_page(offset: int, limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(
            f"page size must be a whole number from 1 to {MAX_PAGE_SIZE} (LocalLeads' maximum), got {limit!r}"
        )
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a whole number >= 0, got {offset!r}")
