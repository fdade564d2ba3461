"""CreditTransactionsToSqlOperator: land a vendor's credit ledger into any common-sql database."""

from __future__ import annotations

from datetime import timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.sql.connections import check_names, sql_hook_for
from airflow_credits_provider.sql.landing import LandingTarget
from airflow_credits_provider.sql.tables import raw_json, to_naive_utc
from airflow_credits_provider.transfers.base import CreditToSqlBaseOperator

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from datetime import datetime

    from airflow_credits_provider.compat import Context
    from airflow_credits_provider.models import CreditTransaction, TransactionPage

MODES = ("incremental", "full_refresh")


class CreditTransactionsToSqlOperator(CreditToSqlBaseOperator):
    """Land a vendor's credit transactions into a table, incrementally, idempotently and crash-safely.

    Pages the vendor's ledger newest first and upserts one row per transaction, keyed on
    (vendor, account, transaction_id), in batches: on PostgreSQL through ``COPY`` into a temporary table
    and ``INSERT ... ON CONFLICT``, elsewhere through common-sql's ``insert_rows(replace=True)``. Memory
    stays flat whatever the history's size.

    Incremental runs start from a cursor stored beside the table (``<table>_cursor``): the newest
    ``created_at`` of the last *completed* run, minus ``overlap``, and stop paging once past it, so a
    daily run costs about ``ceil(new / page_size) + 1`` requests. The cursor moves only after a run
    completes, so a run killed at any point and rerun (or retried) lands everything it missed; the
    upsert makes the repeated rows harmless. Rows pushed down by transactions arriving while it pages
    are read twice and landed once; transactions that arrive after the first page are landed by the
    next run.

    Paging ends only where the vendor says the ledger ends (see
    :class:`~.client.ledger.OffsetPaginator`): a short page in the middle of the ledger
    does not end the run, and a page that contradicts the vendor's own total fails it with the cursor
    unmoved. Amounts are stored exactly; a row that cannot be stored exactly fails the run naming its
    transaction id (:class:`~airflow_credits_provider.errors.RowRejectedError`), never rounded.

    A full refresh re-lands the whole ledger and then deletes this account's rows that the ledger no
    longer holds (only after a complete pass). Rows of other accounts or vendors are never touched,
    and no table is ever dropped.

    :param credit_conn_id: the credit connection whose ledger to land (LocalLeads) (templated)
    :param sql_conn_id: any common-sql connection (Postgres, SQLite, MySQL, ...) (templated)
    :param table: target table, at most 56 characters (its cursor table is ``<table>_cursor``) (templated)
    :param schema: target schema, or ``None`` for the connection's default (templated)
    :param create_table: create the table and its cursor table when missing
    :param account: label stored with each row (default: ``credit_conn_id``) (templated)
    :param mode: ``"incremental"`` (default) or ``"full_refresh"``
    :param page_size: transactions per request, 1 to 100
    :param overlap: how far before the cursor incremental runs re-read, for late-arriving transactions
    :param batch_size: rows per upsert transaction
    :param max_concurrent_pages: ledger pages requested at once after the first (``None``: the vendor's
        default, LocalLeads 10; ``1``: one after another). Pages are written in order, rows that shift while
        pages are in flight are fetched again, and a 429 halves the number in flight and pauses them all
        (docs/landing.md)
    :param requests_per_second: the most ledger requests started per second (``None``: no cap)
    """

    default_table = "credit_transactions"
    lineage_input = "transactions"

    def __init__(
        self,
        *,
        mode: str = "incremental",
        page_size: int = 100,
        overlap: timedelta = timedelta(hours=1),
        batch_size: int = 2000,
        max_concurrent_pages: int | None = None,
        requests_per_second: float | None = None,
        **kwargs: Any,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 100:
            raise ValueError(f"page_size must be a whole number from 1 to 100, got {page_size!r}")
        if not isinstance(overlap, timedelta) or overlap < timedelta(0):
            raise ValueError(f"overlap must be a non-negative timedelta, got {overlap!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive whole number, got {batch_size!r}")
        if max_concurrent_pages is not None and (
            isinstance(max_concurrent_pages, bool)
            or not isinstance(max_concurrent_pages, int)
            or not 1 <= max_concurrent_pages <= 32
        ):
            raise ValueError(
                "max_concurrent_pages must be a whole number from 1 to 32 (or None), got "
                f"{max_concurrent_pages!r}"
            )
        if requests_per_second is not None and (
            isinstance(requests_per_second, bool)
            or not isinstance(requests_per_second, (int, float))
            or not 0 < requests_per_second < float("inf")
        ):
            raise ValueError(
                f"requests_per_second must be a positive number (or None), got {requests_per_second!r}"
            )
        super().__init__(**kwargs)
        self.mode = mode
        self.page_size = page_size
        self.overlap = overlap
        self.batch_size = batch_size
        self.max_concurrent_pages = max_concurrent_pages
        self.requests_per_second = requests_per_second

    def land(self, context: Context) -> int:
        """Land the ledger; return the number of rows inserted or updated.

        The first page is requested as soon as the credit connection is known: the database is set up
        (its hook's imports, a connection, the table check and the cursor) while that page is on the
        wire, and the pages after it go out once both are there (the cursor says how far to page).
        """
        from concurrent.futures import Future

        import pendulum

        from airflow_credits_provider.hooks.connections import get_connection
        from airflow_credits_provider.hooks.resolve import get_credit_hook
        from airflow_credits_provider.transfers.base import require_ledger

        check_names(self.table, self.schema, with_cursor=True)  # before any connection or request
        credit = get_credit_hook(self.credit_conn_id)
        ledger = require_ledger(credit)
        sql_conn = get_connection(self.sql_conn_id)  # a missing connection fails before any request
        vendor = credit.vendor_class.key
        account = self.account or self.credit_conn_id
        run_started = pendulum.now("UTC")
        loaded_at = to_naive_utc(run_started)
        # The pager waits on this once its first page is in; cancelled, it stops without another request.
        since_known: Future[datetime | None] = Future()
        # The HTTP client opens in the paging thread: its TLS context (prepared while the connections were
        # looked up) may still be loading there, off the interpreter, while this thread imports the SQL side.
        with ledger.open_transaction_pages(
            self.page_size,
            since=since_known.result,
            max_concurrent_pages=self.max_concurrent_pages or ledger.default_concurrent_pages,
            requests_per_second=self.requests_per_second,
        ) as ledger_pages:
            try:
                target = LandingTarget.transactions(
                    sql_hook_for(self.sql_conn_id, conn=sql_conn), self.table, self.schema
                )
                with target.one_connection():
                    cursor = target.prepare(
                        vendor, account, create=self.create_table, read_cursor=self.mode == "incremental"
                    )
                    since = cursor - self.overlap if cursor is not None else None
                    since_known.set_result(since)
                    landed, pages, newest = self._write(
                        target, ledger_pages, vendor, account, since, loaded_at
                    )
                    if self.mode == "full_refresh":
                        removed = target.delete_stale(vendor, account, run_started)
                        self.log.info("Full refresh removed %d rows the ledger no longer holds", removed)
                    if newest is not None or cursor is not None:
                        target.write_cursor(
                            vendor, account, max(d for d in (newest, cursor) if d is not None), run_started
                        )
            finally:
                since_known.cancel()  # still unset: the set-up failed; the pager stops at once
        self._lineage = {
            "source": f"{credit.client.settings.base_url}",
            "vendor": vendor,
            "account": account,
        }
        self.log.info(
            "Landed %d rows from %d page(s) into %s (%s)",
            landed,
            pages,
            target.data.qualified,
            f"those from {since.isoformat()}, the cursor less the {self.overlap} overlap: rows landed "
            "before are written again"
            if since is not None
            else "the whole ledger",
        )
        return landed

    def _write(
        self,
        target: LandingTarget,
        ledger_pages: Iterable[TransactionPage],
        vendor: str,
        account: str,
        since: datetime | None,
        loaded_at: datetime,
    ) -> tuple[int, int, datetime | None]:
        """Upsert the ledger's rows (from ``since``); return the rows landed, pages read and newest time."""
        self.log.info(
            "Landing %s transactions of %s into %s (%s, %s)",
            vendor,
            account,
            target.data.qualified,
            self.mode,
            f"from {since.isoformat()}" if since else "whole ledger",
        )
        pages = 0
        newest: datetime | None = None
        created_at = attrgetter("created_at")

        def chunks() -> Iterator[list[tuple[Any, ...]]]:
            """The rows to upsert, a page at a time: the table pulls and commits them a batch at a time.

            Paging stops where the vendor says the ledger ends, or after the page that reaches past the
            incremental window (older rows were landed by earlier runs).
            """
            nonlocal pages, newest
            for page in ledger_pages:
                pages += 1
                transactions = page.transactions
                if not transactions:
                    continue
                page_newest = max(map(created_at, transactions))
                newest = page_newest if newest is None or page_newest > newest else newest
                if since is not None:
                    transactions = [tx for tx in transactions if tx.created_at >= since]
                yield [self._row(vendor, account, tx, loaded_at) for tx in transactions]

        landed = target.data.upsert_chunks(chunks(), self.batch_size)
        return landed, pages, newest

    @staticmethod
    def _row(vendor: str, account: str, tx: CreditTransaction, loaded_at: datetime) -> tuple[Any, ...]:
        """One table row; ``loaded_at`` is the run's start as a naive UTC datetime."""
        return (
            vendor,
            account,
            tx.id,
            tx.type,
            tx.amount,
            tx.description,
            to_naive_utc(tx.created_at),
            loaded_at,
            raw_json(tx.raw),
        )
