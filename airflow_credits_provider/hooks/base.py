"""The shared base of every credit hook: connection handling, the transport, balance and Test button."""

from __future__ import annotations

import contextlib
import re
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_credits_provider.client.transport import (
    ClientSettings,
    CreditApiClient,
    RetryPolicy,
    prepare_tls,
)
from airflow_credits_provider.compat import BaseHook
from airflow_credits_provider.errors import CreditApiError, CreditConnectionConfigError, CreditProviderError
from airflow_credits_provider.hooks.connection_form import (
    CONNECTION_EXTRAS,
    connection_form,
    generic_api_fields,
    read_extra,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

    from airflow_credits_provider.models import CreditBalance
    from airflow_credits_provider.vendors.base import ApiRequest, CreditVendor


#: What an API key may hold: visible ASCII (RFC 9110 field values, and safe once URL-encoded).
_SENDABLE_KEY = re.compile(r"[\x21-\x7e]+")


class CreditApiHook(BaseHook):
    """Base hook for a vendor credit API; a subclass sets ``vendor_class``, and the rest follows from it.

    The connection type (``conn_type``), default connection id (``<key>_default``) and the name in
    Airflow's UI (``hook_name``) come from the vendor description, so they are written once.

    The connection holds the API key in its password field; its host, when set, overrides the vendor's
    base URL (a full URL such as ``http://127.0.0.1:8765/leadmagic``, or a host name with the schema
    field giving the scheme). Extras: ``timeout``, ``max_retries``, ``max_retry_wait`` and
    ``retry_initial_wait`` (seconds).

    Nothing is resolved in the constructor; the connection is read on first use.

    :param credit_conn_id: the Airflow connection id
    :param timeout: overrides the connection's ``timeout`` extra
    :param max_retries: overrides the connection's ``max_retries`` extra
    """

    conn_name_attr = "credit_conn_id"
    conn_type: ClassVar[str]
    default_conn_name: ClassVar[str]
    hook_name: ClassVar[str]
    vendor_class: ClassVar[type[CreditVendor]]

    def __init__(
        self,
        credit_conn_id: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.credit_conn_id = credit_conn_id or self.default_conn_name
        self._overrides = {"timeout": timeout, "max_retries": max_retries}
        self._pool = contextlib.ExitStack()  # the pooled HTTP session inside ``with hook:``

    def __repr__(self) -> str:
        return f"{type(self).__name__}(credit_conn_id={self.credit_conn_id!r})"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        vendor = cls.__dict__.get("vendor_class")
        if vendor is not None:
            cls.conn_type = vendor.key
            cls.default_conn_name = vendor.default_conn_name()
            cls.hook_name = vendor.hook_name()
        # Airflow 3.0/3.1 read form behaviour only from a hook's *own* __dict__, so each vendor hook
        # gets the classmethod itself. Airflow 3.2+ reads the declarative form in the provider info.
        if "get_ui_field_behaviour" not in cls.__dict__:
            cls.get_ui_field_behaviour = classmethod(_ui_field_behaviour)  # type: ignore[assignment,method-assign]

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form behaviour for Airflow 3.0/3.1, which predate the declarative ``conn-fields``."""
        return _ui_field_behaviour(cls)

    # -- connection --------------------------------------------------------------------------------
    @classmethod
    def get_connection(cls, conn_id: str) -> Any:
        """Read the connection ``conn_id`` in a task or outside one (a script, a notebook).

        Outside a task, Airflow's Task SDK does not read the metadata database; the connections made
        in the UI or with ``airflow connections add`` are then read as ``airflow connections get``
        reads them.

        :raises CreditConnectionConfigError: no such connection (the message says where to make it)
        """
        from airflow_credits_provider.hooks.connections import get_connection

        return get_connection(conn_id)

    def _vendor(self, extra: dict[str, Any], conn: Any) -> CreditVendor:
        """Build the vendor description (the generic hook reads it from the connection)."""
        return self.vendor_class()

    def _client_from_connection(self, conn: Any) -> CreditApiClient:
        extra = read_extra(conn.extra_dejson, self.conn_type)
        vendor = self._vendor(extra, conn)
        api_key = (conn.password or "").strip()
        if not api_key:
            raise CreditConnectionConfigError(
                f"Connection {self.credit_conn_id!r} has no API key: put the {vendor.display_name} API "
                "key in the connection's password field (labelled 'API key')."
            )
        if not _SENDABLE_KEY.fullmatch(api_key):
            # httpx would refuse it with an error quoting the key's bytes; say what is wrong, not the key.
            raise CreditConnectionConfigError(
                f"Connection {self.credit_conn_id!r}: the {vendor.display_name} API key contains a "
                "character that cannot be sent in an HTTP header or URL (a line break, another control "
                "character, a space or a non-ASCII character). Paste the key again without it."
            )
        settings = ClientSettings(
            base_url=self._base_url(conn, vendor),
            timeout=self._extra_number(extra, "timeout"),
            retry=RetryPolicy(
                max_retries=int(self._extra_number(extra, "max_retries")),
                initial_wait=self._extra_number(extra, "retry_initial_wait"),
                max_wait=self._extra_number(extra, "max_retry_wait"),
            ),
            conn_id=self.credit_conn_id,
        )
        return CreditApiClient(vendor, api_key, settings, on_response=self._on_response)

    def _base_url(self, conn: Any, vendor: CreditVendor) -> str:
        host = (conn.host or "").strip()
        if not host:
            return vendor.default_base_url
        if "://" not in host:
            scheme = (conn.schema or "").strip().lower()
            scheme = scheme if scheme in ("http", "https") else "https"
            host = f"{scheme}://{host}"
            if conn.port:
                host = f"{host}:{conn.port}"
        if not host.startswith(("http://", "https://")):
            raise CreditConnectionConfigError(
                f"Connection {self.credit_conn_id!r} has host {host!r}: the base URL must start with "
                "http:// or https://."
            )
        return host.rstrip("/")

    def _extra_number(self, extra: dict[str, Any], name: str) -> float:
        kind, default, low, high = CONNECTION_EXTRAS[name]
        value: Any = self._overrides.get(name)
        if value is None:
            value = extra.get(name)
        if value is None or value == "":
            return default
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if kind is int and number != int(number):
                raise ValueError
        except (TypeError, ValueError):
            raise CreditConnectionConfigError(
                f"Connection {self.credit_conn_id!r}: extra {name!r} must be a "
                f"{'whole ' if kind is int else ''}number, got {value!r}."
            ) from None
        if not low <= number <= high:
            raise CreditConnectionConfigError(
                f"Connection {self.credit_conn_id!r}: extra {name!r} must be between {low:g} and "
                f"{high:g}, got {value!r}."
            )
        return number

    @staticmethod
    def _key_to_mask(conn: Any) -> str | None:
        """The key as sent, when Airflow's own masking of the password does not already cover it.

        Airflow registers every connection's password with its secret masker when it reads the
        connection, so the key (the password) is masked in task logs by value whatever header carries
        it. Only a password with surrounding blanks, which the hooks strip, needs its stripped form
        registered too. (Registering the password again would be redundant, and Airflow 3.0 debug-logs
        the value of every mask request a task sends.)
        """
        password = conn.password or ""
        stripped = password.strip()
        return stripped if stripped and stripped != password else None

    @cached_property
    def client(self) -> CreditApiClient:
        """The transport for this connection (resolved and validated on first use)."""
        prepare_tls()  # the CA bundle loads on the other core while the connection is looked up
        conn = self.get_connection(self.credit_conn_id)
        if key := self._key_to_mask(conn):
            from airflow_credits_provider.compat import mask_secret

            mask_secret(key)
        return self._client_from_connection(conn)

    @classmethod
    def for_connection(cls, conn: Any) -> CreditApiHook:
        """A hook on ``conn``, a connection the caller has already read (no look-up by id).

        For server code that reads connections itself, such as the Credits page in the api-server,
        where the Task SDK's look-up by id does not reach the metadata database.

        :param conn: Airflow's ``Connection`` (or an object with its ``conn_id``, ``password``,
            ``host``, ``schema``, ``port`` and ``extra_dejson``)
        :raises CreditConnectionConfigError: the connection cannot be used (no key, bad extras)
        """
        hook = cls(conn.conn_id)
        hook.__dict__["client"] = hook._client_from_connection(conn)
        return hook

    def get_conn(self) -> CreditApiClient:
        """Return the transport for this connection."""
        return self.client

    async def aget_client(self) -> CreditApiClient:
        """Resolve the connection without blocking the event loop and return a transport for it."""
        from asgiref.sync import sync_to_async

        from airflow_credits_provider.compat import amask_secret, get_async_connection

        conn = await get_async_connection(self.credit_conn_id)
        if key := self._key_to_mask(conn):
            await amask_secret(key)
        # Reading a connection's extra may register secrets with Airflow's masker, which in a triggerer
        # is a synchronous call to the supervisor (Airflow 3.0 Connection.extra_dejson does it): made on
        # the event loop's thread, it fails ("cannot use AsyncToSync in the same thread as an async
        # event loop"). Build the client in a worker thread.
        client: CreditApiClient = await sync_to_async(self._client_from_connection)(conn)
        return client

    def __enter__(self) -> CreditApiHook:
        """Pool HTTP connections across the calls made inside the ``with`` block."""
        self._pool.enter_context(self.client.session())
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._pool.close()

    def _on_response(self, response: httpx.Response) -> None:
        """Observe every HTTP response (override to read vendor headers)."""

    # -- calls ---------------------------------------------------------------------------------------
    def _call_and_parse(self, call: ApiRequest, parser: Callable[[Any], Any]) -> Any:
        client = self.client
        return client.parse(call, parser, client.request_json(call))

    def get_balance(self) -> CreditBalance:
        """Fetch the current balance, normalised to a :class:`CreditBalance`."""
        return self._call_and_parse(self.client.vendor.balance_request, self._balance_parser())  # type: ignore[no-any-return]

    async def aget_balance(self, client: CreditApiClient | None = None) -> CreditBalance:
        """Fetch the balance without blocking the event loop.

        :param client: a client from :meth:`aget_client` to reuse (e.g. inside its ``asession()``);
            without one, the connection is resolved again
        """
        client = client or await self.aget_client()
        call = client.vendor.balance_request
        payload = await client.arequest_json(call)
        return client.parse(call, self._balance_parser(client.vendor), payload)  # type: ignore[no-any-return]

    def _balance_parser(self, vendor: CreditVendor | None = None) -> Callable[[Any], CreditBalance]:
        import pendulum

        vendor = vendor or self.client.vendor
        return lambda payload: vendor.parse_balance(payload, pendulum.now("UTC"))

    def test_connection(self) -> tuple[bool, str]:
        """Check the key with a real call, for the connection form's Test button.

        The message names the vendor and the result, not the connection id: the Test button runs on a
        temporary connection whose random id would mean nothing to the user.
        """
        from airflow_credits_provider.parsing import format_amount

        try:
            balance = self._test_call()
        except CreditApiError as exc:
            return False, exc.message.rsplit(" [", 1)[0] + f" [{exc.method} {exc.path}]"
        except CreditProviderError as exc:
            return False, str(exc).replace(f"Connection {self.credit_conn_id!r}", "The connection")
        return True, f"{balance.vendor_name}: {format_amount(balance.available)} credits available"

    def _test_call(self) -> CreditBalance:
        return self.get_balance()


def _ui_field_behaviour(cls: type[CreditApiHook]) -> dict[str, Any]:
    vendor = cls.vendor_class
    # The generic type keeps the extra field visible: there, before declarative forms, it is where the
    # API is described (preset, paths, auth).
    describe = generic_api_fields({}) if vendor.generic else None
    behaviour = connection_form(vendor, describe)["ui-field-behaviour"]
    return {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": {k: v for k, v in behaviour["placeholders"].items() if k in ("host", "password")},
    }
