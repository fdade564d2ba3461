"""What a credit vendor *is*, apart from how bytes move.

A vendor is a small description: its base URL, how it authenticates, the request that returns the
balance, and pure functions that turn its JSON into a :class:`~airflow_credits_provider.models.CreditBalance`
or read its error bodies. The transport (:mod:`airflow_credits_provider.transport`) serves every vendor,
in sync hooks and async triggers alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from collections.abc import Generator, Mapping

    from pendulum import DateTime

    from airflow_credits_provider.models import CreditBalance


@dataclass(frozen=True)
class ApiRequest:
    """One call to a vendor API, relative to the connection's base URL.

    :param method: HTTP method
    :param path: path below the base URL, e.g. ``"/v1/credits"``
    :param params: query parameters
    :param json: JSON body
    :param idempotent: whether repeating the call is harmless; only idempotent calls are retried after
        5xx answers and network errors (a 429 is always retried: the vendor did not run the call)
    """

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    idempotent: bool = True


@dataclass(frozen=True)
class VendorErrorDetail:
    """What a vendor's error body says: its message, machine-readable code and request id."""

    message: str | None = None
    code: str | None = None
    request_id: str | None = None


class _SecretAuth(httpx.Auth):
    """Base for key-carrying auth: the key is never shown by ``repr``/``str``."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_key='***')"

    __str__ = __repr__


class HeaderKeyAuth(_SecretAuth):
    """Send the key in a named header, e.g. LeadMagic's ``X-API-Key``."""

    def __init__(self, header: str, api_key: str) -> None:
        super().__init__(api_key)
        self.header = header

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the header on each request."""
        request.headers[self.header] = self._api_key
        yield request


class QueryKeyAuth(_SecretAuth):
    """Send the key as a query parameter (e.g. ``?api_key=``); URLs are sanitised before any log line."""

    def __init__(self, param: str, api_key: str) -> None:
        super().__init__(api_key)
        self.param = param

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the key to the query string."""
        request.url = request.url.copy_merge_params({self.param: self._api_key})
        yield request


class BearerAuth(_SecretAuth):
    """Send the key as ``Authorization: Bearer <key>``."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set ``Authorization`` on each request."""
        request.headers["Authorization"] = f"Bearer {self._api_key}"
        yield request


class CreditVendor:
    """Base description of a vendor's credit API. Subclasses fill the class attributes and parsers.

    Class attributes: ``key`` (short identifier, also the Airflow connection type, ``"leadmagic"``),
    ``display_name`` (used in messages), ``default_base_url`` (the vendor's documented base URL),
    ``balance_request`` (the call that returns the balance) and ``key_hint`` (where to find the key).
    """

    # Class attributes for the named vendors; the configurable generic vendor sets them per instance.
    key: str
    display_name: str
    default_base_url: str
    balance_request: ApiRequest
    request_id_headers: tuple[str, ...] = ("x-request-id", "request-id", "cf-ray")
    key_hint: str = ""

    def auth(self, api_key: str) -> httpx.Auth:
        """Return the ``httpx.Auth`` that attaches ``api_key`` to each request."""
        raise NotImplementedError

    def parse_balance(self, payload: Any, fetched_at: DateTime) -> CreditBalance:
        """Turn the balance endpoint's JSON into a :class:`CreditBalance` (raise ResponseFormatError)."""
        raise NotImplementedError

    def parse_error(self, payload: Any) -> VendorErrorDetail:
        """Read the vendor's error body; unknown shapes give an empty detail, never an exception."""
        if isinstance(payload, dict):
            message = payload.get("message") or payload.get("error") or payload.get("detail")
            return VendorErrorDetail(message=message if isinstance(message, str) else None)
        return VendorErrorDetail()

    def error_in_success(self, payload: Any) -> tuple[int, VendorErrorDetail] | None:
        """Detect an error reported with HTTP 2xx.

        Return ``(equivalent_status, detail)`` when ``payload`` is an error, else ``None``.
        """
        return None
