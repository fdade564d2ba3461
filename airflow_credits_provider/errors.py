"""Exceptions raised by the credit hooks.

Every exception carries its context in attributes, so callers decide by type, never by message text.
Messages quote the vendor's own error text (truncated) and say what to do; they never contain an API
key and never dump a whole response body.

Two words name a vendor everywhere (models, errors, table columns, XCom): ``vendor`` is its key
(``"leadmagic"``, also the connection type) and ``vendor_name`` its display name (``"LeadMagic"``).

The tree::

    CreditProviderError
    ├── CreditConnectionConfigError     the Airflow connection is incomplete or invalid
    │   ├── LedgerNotAvailableError     the vendor has no transaction ledger to land
    │   ├── BudgetError                 a budget is unknown, invalid, or on another account
    │   └── AlertRuleError              an alert rule is unknown or invalid (threshold, subject, notifier
    │       │                           or its arguments): nothing was written
    │       └── AlertRuleFileError      a rules file has a problem (names its line)
    ├── AlertDeliveryError              a notifier failed to send an alert (the claim stays, retried)
    ├── InvalidCostEstimateError        a cost, unit count, unit price or margin is not a usable amount
    ├── UnknownValidationTypeError      the vendor prices no such service (TrueMail validation type)
    ├── RowRejectedError                a landing row cannot be stored exactly, or the database refused
    │                                   it (row_key names it); the run fails, its cursor unmoved
    ├── ReservationLockTimeout          another reserver held the account's lock longer than lock_timeout
    ├── SnapshotHistoryError            the balance snapshots cannot be read (table, schema, database)
    │   └── NotEnoughHistoryError       fewer than two snapshots in the window: no burn rate to forecast
    ├── ResponseFormatError             a vendor payload lacks the documented shape (names the field);
    │                                   the transport turns it into BadResponseError
    ├── CreditPreflightFailed           the balance does not cover the job, or never can; also an
    │                                   Airflow ``AirflowFailException``, so the task fails without retries
    └── CreditApiError                  a call to a vendor failed (vendor, vendor_name, method, path,
        │                               status_code, error_code, request_id)
        ├── AuthenticationError         401: the API key is missing, wrong or expired
        ├── PermissionDeniedError       403: plan gate, IP allow-list, disabled feature
        │   └── ValidationTypeUnavailableError   the plan cannot run that validation type at all
        ├── InsufficientCreditsError    402: the vendor refused for lack of credits
        ├── NotFoundError               404
        ├── InvalidRequestError         400 / 422 and other 4xx
        ├── BadResponseError            2xx, but the body is not the documented JSON
        │   └── InconsistentLedgerError a ledger page contradicts the vendor's own total
        └── RetryableApiError           worth retrying; raised once the retries are used up
            ├── RateLimitedError        429 (retry_after in seconds, when the vendor sent one)
            ├── VendorUnavailableError  5xx
            └── VendorUnreachableError  network error: refused, reset, dropped connection
                └── VendorTimeoutError  connect / read / write / pool timeout

:class:`CreditPreflightFailed` subclasses Airflow's ``AirflowFailException``. So that importing this
module stays free of Airflow (it is used by the sandbox, the CLI and the parsers), that one class is
created on first access (PEP 562 module ``__getattr__``); it is the same class object every time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

MAX_VENDOR_MESSAGE = 200


def truncate(text: str, limit: int = MAX_VENDOR_MESSAGE) -> str:
    """Collapse whitespace and cut ``text`` to ``limit`` characters, marking the cut."""
    flat = " ".join(str(text).split())
    if len(flat) <= limit:
        return flat
    return flat[: limit - 1] + "…"


class CreditProviderError(Exception):
    """Base class of every error raised by this provider."""


class CreditConnectionConfigError(CreditProviderError, ValueError):
    """The Airflow connection for a credit API is missing something or holds an invalid value."""


class MissingDatabaseFileError(CreditConnectionConfigError):
    """A SQLite connection read from names a file that does not exist (nothing was created)."""


class TrustStoreError(CreditConnectionConfigError):
    """The CA bundle that verifies vendors' TLS certificates could not be loaded.

    ``SSL_CERT_FILE`` (or ``SSL_CERT_DIR``) names a missing or unreadable file, or one without certificates.
    """


class LedgerNotAvailableError(CreditConnectionConfigError):
    """The vendor exposes no transaction ledger; land balance snapshots instead."""


class InvalidCostEstimateError(CreditProviderError, ValueError):
    """A cost, unit count, unit cost or margin is negative, NaN, infinite, non-numeric or missing."""


class UnknownValidationTypeError(CreditProviderError, ValueError):
    """The vendor reports no price for the requested service (e.g. a TrueMail validation type)."""


class RowRejectedError(CreditProviderError):
    """A row cannot be landed exactly (or the database rejected it); nothing is rounded or dropped.

    :param row_key: the row's primary key, e.g. ``"vendor=localleads, account=a, transaction_id=txn_1"``
    """

    def __init__(self, message: str, *, row_key: str = "") -> None:
        super().__init__(message)
        self.row_key = row_key


class ReservationLockTimeout(CreditProviderError):
    """The reservation table's account lock was not granted within ``lock_timeout`` (worth retrying)."""


class UnknownReservingTaskError(CreditProviderError, ValueError):
    """A release names, in ``reserved_by``, no task of its DAG: it would release nothing."""


class BudgetError(CreditConnectionConfigError):
    """A credit budget is defined wrongly, unknown, or named by a task on another account (never retried)."""


class InvalidBudgetError(BudgetError):
    """A budget's name, account, cap, period or time zone is invalid (nothing is written)."""


class UnknownBudgetError(BudgetError):
    """A task names a budget the reservation database does not define (the message lists those it does)."""


class BudgetFileError(InvalidBudgetError):
    """A budgets file (YAML or JSON) cannot be imported; the message names its line (nothing is written)."""


class AlertRuleError(CreditConnectionConfigError):
    """An alert rule is unknown or invalid: a threshold, its subject, its notifier or the notifier's args."""


class UnknownAlertRuleError(AlertRuleError):
    """No alert rule has that name."""


class AlertRuleFileError(AlertRuleError):
    """An alert rules file cannot be read, or an entry in it is invalid (the message names the line)."""


class AlertDeliveryError(CreditProviderError):
    """A notifier failed to send an alert; the alert stays claimed and is retried with backoff."""


class SnapshotHistoryError(CreditProviderError):
    """The balance snapshots a runway forecast needs cannot be read (no table, wrong schema, database)."""


class NotEnoughHistoryError(SnapshotHistoryError, ValueError):
    """Fewer than two balance snapshots at different times in the window: no burn rate can be measured.

    :param snapshots: how many snapshots the window held
    """

    def __init__(self, message: str, *, snapshots: int = 0) -> None:
        super().__init__(message)
        self.snapshots = snapshots


class ResponseFormatError(CreditProviderError, ValueError):
    """A vendor payload does not have the documented shape; the message names the field.

    Raised by the pure parsers; the transport re-raises it as :class:`BadResponseError` with the
    vendor, the request and the connection attached.
    """


class CreditApiError(CreditProviderError):
    """A call to a vendor's credit API failed.

    :param message: what happened and what to do about it (never contains the API key)
    :param vendor: the vendor's key, e.g. ``"leadmagic"``
    :param vendor_name: the vendor's display name, e.g. ``"LeadMagic"``
    :param method: HTTP method of the failed call
    :param path: URL path of the failed call (no query string, no key)
    :param status_code: HTTP status code, or ``None`` when no response arrived
    :param error_code: the vendor's machine-readable error code, when it sent one
    :param request_id: the vendor's request id, when it sent one (quote it to their support)
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        vendor: str | None = None,
        vendor_name: str | None = None,
        method: str | None = None,
        path: str | None = None,
        status_code: int | None = None,
        error_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.vendor = vendor
        self.vendor_name = vendor_name
        self.method = method
        self.path = path
        self.status_code = status_code
        self.error_code = error_code
        self.request_id = request_id

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only context survives pickling (Airflow may pickle exceptions across processes).
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(vendor={self.vendor!r}, status_code={self.status_code!r}, "
            f"error_code={self.error_code!r}, request_id={self.request_id!r})"
        )


def _rebuild(cls: type[CreditApiError], message: str, state: dict[str, Any]) -> CreditApiError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(state)
    return exc


class AuthenticationError(CreditApiError):
    """The vendor rejected the API key (HTTP 401, or a documented bad-key answer)."""


class PermissionDeniedError(CreditApiError):
    """The key is valid but not allowed to do this (HTTP 403: plan gate, IP allow-list)."""


class ValidationTypeUnavailableError(PermissionDeniedError):
    """The account's plan cannot run the requested validation type, whatever the balance."""


class InsufficientCreditsError(CreditApiError):
    """The vendor refused the call because the account has too few credits (HTTP 402)."""


class NotFoundError(CreditApiError):
    """The endpoint or resource does not exist (HTTP 404): check the base URL of the connection."""


class InvalidRequestError(CreditApiError):
    """The vendor rejected the request as malformed (HTTP 400, 422 and other 4xx)."""


class UntrustedCertificateError(CreditApiError):
    """The vendor's TLS certificate did not verify (unknown CA, wrong host name, expired): never retried.

    A proxy that re-signs TLS with its own CA needs that CA trusted: ``SSL_CERT_FILE`` (or
    ``SSL_CERT_DIR``) in the environment of the Airflow components that run the tasks.
    """


class BadResponseError(CreditApiError):
    """The vendor answered, but not with the documented JSON (HTML page, truncated body, wrong types)."""


class InconsistentLedgerError(BadResponseError):
    """A ledger page contradicts the vendor's own total (e.g. an empty page before the total is reached).

    Landing stops without moving its cursor, so nothing is skipped; rerun once the vendor is consistent.
    """


class RetryableApiError(CreditApiError):
    """An error that may go away on retry; raised only after the configured retries are used up."""

    retryable = True


class RateLimitedError(RetryableApiError):
    """The vendor rate-limited the call (HTTP 429).

    :param retry_after: seconds the vendor asked us to wait (``Retry-After``), or ``None``
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after


class VendorUnavailableError(RetryableApiError):
    """The vendor answered with a server error (HTTP 5xx)."""


class VendorUnreachableError(RetryableApiError):
    """No usable answer arrived: connection refused, reset or dropped mid-response."""


class VendorTimeoutError(VendorUnreachableError):
    """The vendor did not answer within the connection's timeout."""


if TYPE_CHECKING:
    from airflow_credits_provider.compat import AirflowFailException

    class CreditPreflightFailed(AirflowFailException, CreditProviderError):
        """The balance does not cover the job (or never can): fails the task at once, without retries."""

else:
    _LAZY: dict[str, type] = {}

    def __getattr__(name: str) -> type:
        # CreditPreflightFailed subclasses Airflow's AirflowFailException; build it on first use so that
        # importing this module does not import Airflow.
        if name != "CreditPreflightFailed":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        if name not in _LAZY:
            from airflow_credits_provider.compat import AirflowFailException

            _LAZY[name] = type(
                name,
                (AirflowFailException, CreditProviderError),
                {
                    "__module__": __name__,
                    "__qualname__": name,
                    "__doc__": "The balance does not cover the job (or never can): fails the task at "
                    "once, without retries.",
                },
            )
        return _LAZY[name]
