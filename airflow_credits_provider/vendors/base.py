"""What a credit vendor *is*, apart from how bytes move.

A vendor is a small description: its base URL, how it authenticates, the request that returns the
balance, and pure functions that turn its JSON into a
:class:`~airflow_credits_provider.models.CreditBalance` or read its error bodies. The transport
(:mod:`airflow_credits_provider.client.transport`) serves every vendor, in sync hooks and async
triggers alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

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
    ``balance_request`` (the call that returns the balance), ``key_hint`` (where to find the key, shown
    in the connection form) and ``hook_class_name`` (the hook serving its connection type). A subclass
    that sets ``key`` registers itself (see :mod:`airflow_credits_provider.vendors`).
    """

    #: Every described vendor by key, filled as subclasses are defined.
    registry: ClassVar[dict[str, type[CreditVendor]]] = {}

    # Class attributes for the named vendors; the configurable generic vendor sets them per instance.
    key: str
    display_name: str
    default_base_url: str
    balance_request: ApiRequest
    request_id_headers: tuple[str, ...] = ("x-request-id", "request-id", "cf-ray")
    key_hint: str = ""
    #: Dotted path of the hook class for this connection type (named, not imported: no Airflow here).
    hook_class_name: ClassVar[str]
    #: Whether the API is described per connection (the generic type) rather than fixed here.
    generic: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "key" in cls.__dict__:
            CreditVendor.registry[cls.key] = cls

    @classmethod
    def hook_name(cls) -> str:
        """The connection type's name in Airflow's UI."""
        return cls.display_name

    @classmethod
    def default_conn_name(cls) -> str:
        """The default connection id, ``<key>_default``."""
        return f"{cls.key}_default"

    @classmethod
    def name_for(cls, key: str) -> str | None:
        """The display name of ``key`` if this description knows it (the generic one knows its presets)."""
        return cls.display_name if key == cls.key else None

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
