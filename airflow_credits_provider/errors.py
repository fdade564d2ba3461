"""Exceptions raised by the credit hooks.

Every exception carries its context in attributes, so callers decide by type, never by message text.
Messages quote the vendor's own error text (truncated) and say what to do; they never contain an API
key and never dump a whole response body.

The tree::

    CreditProviderError
    ├── CreditConnectionConfigError     the Airflow connection is incomplete or invalid
    └── CreditApiError                  a call to a vendor failed (vendor, method, path, status_code,
        │                               error_code, request_id)
        ├── AuthenticationError         401: the API key is missing, wrong or expired
        ├── PermissionDeniedError       403: plan gate, IP allow-list, disabled feature
        │   └── ValidationTypeUnavailableError   the plan cannot run that validation type at all
        ├── InsufficientCreditsError    402: the vendor refused for lack of credits
        ├── NotFoundError               404
        ├── InvalidRequestError         400 / 422 and other 4xx
        ├── BadResponseError            2xx, but the body is not the documented JSON
        └── RetryableApiError           worth retrying; raised once the retries are used up
            ├── RateLimitedError        429 (retry_after in seconds, when the vendor sent one)
            ├── VendorUnavailableError  5xx
            └── VendorUnreachableError  network error: refused, reset, dropped connection
                └── VendorTimeoutError  connect / read / write / pool timeout
"""

from __future__ import annotations

from typing import Any

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


class CreditApiError(CreditProviderError):
    """A call to a vendor's credit API failed.

    :param message: what happened and what to do about it (never contains the API key)
    :param vendor: display name of the vendor, e.g. ``"LeadMagic"``
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
        method: str | None = None,
        path: str | None = None,
        status_code: int | None = None,
        error_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.vendor = vendor
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


class BadResponseError(CreditApiError):
    """The vendor answered, but not with the documented JSON (HTML page, truncated body, wrong types)."""


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
