"""How bytes move: one transport for every vendor, sync and async.

:class:`CreditApiClient` sends an :class:`~airflow_credits_provider.vendors.base.ApiRequest` with the vendor's
auth, maps every failure to the exception tree in :mod:`airflow_credits_provider.errors`, and retries
what can succeed on retry (429 honouring ``Retry-After``, 5xx, timeouts, dropped connections) with
bounded exponential backoff and jitter, using tenacity. 400/401/402/403/404 fail at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import msgspec

from airflow_credits_provider import errors
from airflow_credits_provider.client.pacing import RATE_LIMIT_RETRIES
from airflow_credits_provider.errors import ResponseFormatError, truncate
from airflow_credits_provider.vendors.base import VendorErrorDetail

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

    from airflow_credits_provider.client.pacing import Throttle
    from airflow_credits_provider.vendors.base import ApiRequest, CreditVendor

log = logging.getLogger(__name__)

_NOT_JSON: Any = object()
#: A float would round any amount past 17 digits; msgspec keeps big integers exact by itself.
_JSON_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_EMPTY_DETAIL = VendorErrorDetail()


class _RedactKeys(logging.Filter):
    """Redact API keys from httpx's own log lines.

    httpx logs every request URL at INFO, query string included, and a query-parameter key (ZeroBounce,
    Hunter, ...) would land in task logs with it. Every key the transport uses is registered here.
    """

    def __init__(self) -> None:
        super().__init__()
        self.keys: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.keys:
            message = record.getMessage()
            redacted = message
            for key in self.keys:
                redacted = redacted.replace(key, "***")
            if redacted != message:
                record.msg, record.args = redacted, ()
        return True


_REDACT = _RedactKeys()
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_REDACT)

USER_AGENT = "airflow-credits-provider"

#: Status code -> (exception class, what happened, what to do).
_STATUS_ERRORS: dict[int, tuple[type[errors.CreditApiError], str, str]] = {
    400: (errors.InvalidRequestError, "rejected the request", "Check the call's parameters."),
    401: (
        errors.AuthenticationError,
        "rejected the API key",
        "Check the API key in the connection's password field (labelled 'API key').",
    ),
    402: (
        errors.InsufficientCreditsError,
        "refused the call for lack of credits",
        "Top up the account, or gate the DAG with CreditPreflightSensor before spending.",
    ),
    403: (
        errors.PermissionDeniedError,
        "denied access",
        "The key is valid but not allowed: check the account's plan and IP allow-list.",
    ),
    404: (
        errors.NotFoundError,
        "does not know this endpoint",
        "Check the connection's host (base URL).",
    ),
    408: (errors.VendorTimeoutError, "timed out the request", "Retry later."),
    422: (errors.InvalidRequestError, "could not process the request", "Check the call's parameters."),
    429: (errors.RateLimitedError, "rate-limited the call", "Lower the call rate or retry later."),
}


@dataclass(frozen=True)
class RetryPolicy:
    """How failed calls are retried.

    :param max_retries: retries after the first attempt (0 disables retrying)
    :param initial_wait: first backoff in seconds; doubles each retry, plus up to as much jitter
    :param max_wait: cap in seconds on any single wait, ``Retry-After`` included
    """

    max_retries: int = 4
    initial_wait: float = 0.5
    max_wait: float = 30.0


@dataclass(frozen=True)
class ClientSettings:
    """Everything the transport needs besides the key.

    :param base_url: the vendor's base URL (or the sandbox's)
    :param timeout: seconds for connect, read, write and pool
    :param retry: the retry policy
    :param conn_id: the Airflow connection id, quoted in error messages
    """

    base_url: str
    timeout: float = 30.0
    retry: RetryPolicy = RetryPolicy()  # noqa: RUF009 - frozen, so sharing the default is safe
    conn_id: str | None = None


def parse_retry_after(value: str | None) -> float | None:
    """Read ``Retry-After`` as delay-seconds or an HTTP date; ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _request_id(vendor: CreditVendor, response: httpx.Response, detail: VendorErrorDetail) -> str | None:
    if detail.request_id:
        return detail.request_id
    for name in vendor.request_id_headers:
        if value := response.headers.get(name):
            return str(value)
    return None


def _decode(response: httpx.Response) -> Any:
    """The body as JSON, or ``_NOT_JSON``; numbers with a fraction become ``Decimal``, integers stay exact.

    msgspec (which Airflow's task SDK already depends on) decodes a ledger page several times faster than
    ``json``. It refuses a few things the JSON grammar allows and ``json`` accepts, such as a lone UTF-16
    surrogate escape or ``NaN``; those bodies go through ``json`` so that the parsers name the field.
    """
    content = response.content
    try:
        return _JSON_DECODER.decode(content)
    except ValueError:  # msgspec.DecodeError is a ValueError
        pass
    try:
        return json.loads(content, parse_float=Decimal)
    except ValueError:
        return _NOT_JSON


def _body_kind(response: httpx.Response) -> str:
    content_type = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
    head = response.content[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or "html" in content_type:
        return f"an HTML page ({content_type})"
    if not response.content:
        return "an empty body"
    return f"a body that is not valid JSON ({content_type}, {len(response.content)} bytes)"


class CreditApiClient:
    """Send requests to one vendor with one key; used by the hooks (sync) and triggers (async).

    The key lives only inside the ``httpx.Auth`` object and is scrubbed from every message this class
    builds. Each call opens and closes its own HTTP client unless made inside :meth:`session` /
    :meth:`asession`, which pool connections across calls (pagination, polling).

    :param vendor: the vendor description
    :param api_key: the API key (kept out of ``repr`` and messages)
    :param settings: base URL, timeout, retry policy, connection id
    :param on_response: called with every HTTP response received, errors included (LeadMagic uses it
        to record ``X-Credits-Remaining``)

    The waits between retries go through :attr:`sleep` and :attr:`asleep` (``time.sleep`` and
    ``asyncio.sleep``); tests replace them to observe the waits without spending them.
    """

    sleep: Callable[[float], None] = staticmethod(time.sleep)
    asleep: Callable[[float], Awaitable[None]] = staticmethod(asyncio.sleep)

    def __init__(
        self,
        vendor: CreditVendor,
        api_key: str,
        settings: ClientSettings,
        *,
        on_response: Callable[[httpx.Response], None] | None = None,
    ) -> None:
        self.vendor = vendor
        self.settings = settings
        self._api_key = api_key
        _REDACT.keys.add(api_key)
        self._auth = vendor.auth(api_key)
        self._on_response = on_response
        self._sync: httpx.Client | None = None
        self._async: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"CreditApiClient(vendor={self.vendor.key!r}, base_url={self.settings.base_url!r})"

    # -- clients -------------------------------------------------------------------------------
    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "base_url": self.settings.base_url,
            "auth": self._auth,
            "timeout": httpx.Timeout(self.settings.timeout),
            "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
            "follow_redirects": False,
            "verify": _ssl_context(),
        }

    @contextlib.contextmanager
    def session(self) -> Iterator[httpx.Client]:
        """Reuse one pooled ``httpx.Client`` for every call made inside the block.

        Outside a session each call opens and closes its own client, so nothing is left open.
        """
        if self._sync is not None:
            yield self._sync
            return
        self._sync = httpx.Client(**self._client_kwargs())
        try:
            yield self._sync
        finally:
            self._sync.close()
            self._sync = None

    @contextlib.asynccontextmanager
    async def asession(self) -> AsyncIterator[httpx.AsyncClient]:
        """Async twin of :meth:`session` (one event loop per session)."""
        if self._async is not None:
            yield self._async
            return
        self._async = httpx.AsyncClient(**self._client_kwargs())
        try:
            yield self._async
        finally:
            await self._async.aclose()
            self._async = None

    # -- public calls --------------------------------------------------------------------------
    def request(self, call: ApiRequest) -> httpx.Response:
        """Send ``call``, retrying per the policy; return the successful response or raise."""
        return self._exchange(call)[0]

    async def arequest(self, call: ApiRequest) -> httpx.Response:
        """Async twin of :meth:`request`."""
        return (await self._aexchange(call))[0]

    def request_json(self, call: ApiRequest, throttle: Throttle | None = None) -> Any:
        """Send ``call`` and return its decoded JSON body.

        :param throttle: pace this call (each attempt, retries included) with the other calls of its job
            (:class:`~airflow_credits_provider.client.pacing.Throttle`): it waits for a slot, and a 429 slows
            the whole job down instead of this call alone
        """
        return self._json_or_raise(call, *self._exchange(call, throttle))

    async def arequest_json(self, call: ApiRequest) -> Any:
        """Async twin of :meth:`request_json`."""
        return self._json_or_raise(call, *(await self._aexchange(call)))

    def _exchange(self, call: ApiRequest, throttle: Throttle | None = None) -> tuple[httpx.Response, Any]:
        # The first attempt goes out directly: building tenacity's retry state for every call cost as much
        # as the HTTP exchange itself when paging. Only a failed call enters tenacity, which then sees
        # that failure as its own first attempt (same waits, logs and give-up message as ever).
        with self.session() as client:
            try:
                return self._send_paced(client, call, throttle)
            except errors.CreditApiError as first_failure:
                failed = [first_failure]
            import tenacity

            for attempt in tenacity.Retrying(sleep=self.sleep, **self._retry_kwargs(call, throttle)):
                with attempt:
                    if failed:
                        raise failed.pop()
                    return self._send_paced(client, call, throttle)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _aexchange(self, call: ApiRequest) -> tuple[httpx.Response, Any]:
        async with self.asession() as client:
            try:
                return await self._asend_once(client, call)
            except errors.CreditApiError as first_failure:
                failed = [first_failure]
            import tenacity

            async for attempt in tenacity.AsyncRetrying(sleep=self.asleep, **self._retry_kwargs(call)):
                with attempt:
                    if failed:
                        raise failed.pop()
                    return await self._asend_once(client, call)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def parse(self, call: ApiRequest, parser: Callable[[Any], Any], payload: Any) -> Any:
        """Run a vendor parser, turning a shape error into :class:`BadResponseError`."""
        try:
            return parser(payload)
        except ResponseFormatError as exc:
            raise self._error(
                errors.BadResponseError,
                f"{self.vendor.display_name} answered {call.method} {call.path} with an unexpected "
                f"payload: {self._scrub(str(exc))}. The API may have changed, or a proxy rewrote the "
                "answer.",
                call,
                status_code=200,
            ) from None

    # -- one attempt -----------------------------------------------------------------------------
    def _send_paced(
        self, client: httpx.Client, call: ApiRequest, throttle: Throttle | None
    ) -> tuple[httpx.Response, Any]:
        """One attempt, in a slot of ``throttle`` when given; tell it how the attempt went."""
        if throttle is None:
            return self._send_once(client, call)
        with throttle.slot() as epoch:
            try:
                result = self._send_once(client, call)
            except errors.RateLimitedError as exc:
                paused = throttle.rate_limited(exc.retry_after, epoch)
                log.warning(
                    "%s rate-limited %s %s (HTTP 429): at most %d request(s) at once from now; every "
                    "request waits until %.2fs after this answer, then this one is retried",
                    self.vendor.display_name,
                    call.method,
                    call.path,
                    throttle.limit,
                    paused,
                )
                raise
        throttle.succeeded(epoch)
        return result

    def _send_once(self, client: httpx.Client, call: ApiRequest) -> tuple[httpx.Response, Any]:
        try:
            response = client.request(call.method, call.path, params=call.params, json=call.json)
        except httpx.HTTPError as exc:
            raise self._transport_error(call, exc) from None
        return self._check(call, response)

    async def _asend_once(self, client: httpx.AsyncClient, call: ApiRequest) -> tuple[httpx.Response, Any]:
        try:
            response = await client.request(call.method, call.path, params=call.params, json=call.json)
        except httpx.HTTPError as exc:
            raise self._transport_error(call, exc) from None
        return self._check(call, response)

    def _check(self, call: ApiRequest, response: httpx.Response) -> tuple[httpx.Response, Any]:
        """Raise for error answers; return the response and its decoded body (decoded once)."""
        if self._on_response is not None:
            self._on_response(response)
        payload = _decode(response)
        if response.is_success:
            if payload is not _NOT_JSON and (found := self.vendor.error_in_success(payload)) is not None:
                status, detail = found
                raise self._status_error(call, response, status, detail)
            return response, payload
        error_detail = self.vendor.parse_error(payload) if payload is not _NOT_JSON else None
        raise self._status_error(call, response, response.status_code, error_detail)

    def _json_or_raise(self, call: ApiRequest, response: httpx.Response, payload: Any) -> Any:
        """The decoded body of a successful answer, or :class:`BadResponseError` saying what came."""
        if payload is _NOT_JSON:
            raise self._error(
                errors.BadResponseError,
                f"{self.vendor.display_name} answered {call.method} {call.path} with "
                f"{_body_kind(response)} instead of JSON. Check the connection's host (base URL), "
                "or whether a proxy or captive portal answered instead of the vendor.",
                call,
                status_code=response.status_code,
                request_id=_request_id(self.vendor, response, _EMPTY_DETAIL),
            )
        return payload

    # -- errors ------------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _where(self, call: ApiRequest, request_id: str | None = None) -> str:
        parts = [f"{call.method} {call.path}"]
        if request_id:
            parts.append(f"request id {request_id}")
        if self.settings.conn_id:
            parts.append(f"connection {self.settings.conn_id!r}")
        return "[" + "; ".join(parts) + "]"

    def _error(
        self, cls: type[errors.CreditApiError], message: str, call: ApiRequest, **context: Any
    ) -> errors.CreditApiError:
        message = self._scrub(f"{message} {self._where(call, context.get('request_id'))}")
        return cls(
            message,
            vendor=self.vendor.key,
            vendor_name=self.vendor.display_name,
            method=call.method,
            path=self._scrub(call.path),
            **context,
        )

    def _status_error(
        self,
        call: ApiRequest,
        response: httpx.Response,
        status: int,
        detail: VendorErrorDetail | None,
    ) -> errors.CreditApiError:
        body_is_json = detail is not None
        detail = detail or _EMPTY_DETAIL
        if status in _STATUS_ERRORS:
            cls, happened, advice = _STATUS_ERRORS[status]
        elif status >= 500:
            cls, happened, advice = (
                errors.VendorUnavailableError,
                "had a server error",
                "The vendor is having trouble; retry later.",
            )
        else:
            cls, happened, advice = (errors.InvalidRequestError, "rejected the request", "")
        head = f"HTTP {status}" + (f", {detail.code}" if detail.code else "")
        said = f": {truncate(detail.message).rstrip('.')}" if detail.message else ""
        if not detail.message and not body_is_json:
            said = f" with {_body_kind(response)}"
        message = f"{self.vendor.display_name} {happened} ({head}){said}. {advice}".rstrip()
        context: dict[str, Any] = {
            "status_code": status,
            "error_code": detail.code,
            "request_id": _request_id(self.vendor, response, detail),
        }
        if cls is errors.RateLimitedError:
            context["retry_after"] = parse_retry_after(response.headers.get("retry-after"))
        return self._error(cls, message, call, **context)

    def _transport_error(self, call: ApiRequest, exc: httpx.HTTPError) -> errors.CreditApiError:
        kind = type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return self._error(
                errors.VendorTimeoutError,
                f"{self.vendor.display_name} did not answer within {self.settings.timeout:g}s ({kind}). "
                "Raise the connection's 'timeout' extra if the vendor is slow.",
                call,
            )
        if (reason := _certificate_failure(exc)) is not None:
            return self._error(
                errors.UntrustedCertificateError,
                f"The TLS certificate of {self.vendor.display_name} at {self.settings.base_url} did not "
                f"verify ({truncate(reason, 120)}). Check the connection's host; behind a proxy with its "
                "own CA, point SSL_CERT_FILE (or SSL_CERT_DIR) at a bundle that holds it, in the "
                "environment of the workers and the triggerer.",
                call,
            )
        if isinstance(exc, httpx.TransportError):
            return self._error(
                errors.VendorUnreachableError,
                f"Could not get an answer from {self.vendor.display_name} ({kind}: "
                f"{truncate(str(exc), 120)}). Check the connection's host and the network.",
                call,
            )
        return self._error(
            errors.VendorUnreachableError,
            f"Request to {self.vendor.display_name} failed ({kind}).",
            call,
        )

    # -- retries -----------------------------------------------------------------------------------
    def _retry_kwargs(self, call: ApiRequest, throttle: Throttle | None = None) -> dict[str, Any]:
        """Tenacity's arguments for ``call``.

        With a ``throttle``, a 429 is waited out by the throttle (every request of the job pauses until
        its ``Retry-After``), so this call retries at once into that pause, and 429s may be retried up
        to :data:`~airflow_credits_provider.client.pacing.RATE_LIMIT_RETRIES` times whatever ``max_retries``
        says: a rate limit is the vendor asking for time, not an error that repeating will not fix.
        """
        import tenacity

        policy = self.settings.retry
        paced = throttle is not None

        def should_retry(exc: BaseException) -> bool:
            if isinstance(exc, errors.RateLimitedError):
                return True
            return isinstance(exc, errors.RetryableApiError) and call.idempotent

        def wait(retry_state: tenacity.RetryCallState) -> float:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            if paced and isinstance(exc, errors.RateLimitedError):
                return 0.0  # the throttle's pause is the wait
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                return float(min(retry_after, policy.max_wait))
            backoff = tenacity.wait_exponential(
                multiplier=policy.initial_wait, max=policy.max_wait
            ) + tenacity.wait_random(0, policy.initial_wait)
            return float(min(backoff(retry_state), policy.max_wait))

        def limit(exc: BaseException | None) -> int:
            if paced and isinstance(exc, errors.RateLimitedError):
                return max(policy.max_retries, RATE_LIMIT_RETRIES)
            return policy.max_retries

        def stop(retry_state: tenacity.RetryCallState) -> bool:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            return retry_state.attempt_number >= limit(exc) + 1

        def before_sleep(retry_state: tenacity.RetryCallState) -> None:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            if paced and isinstance(exc, errors.RateLimitedError):
                return  # the throttle said it (how many in flight, how long everything pauses)
            delay = retry_state.next_action.sleep if retry_state.next_action else 0.0
            log.warning(
                "%s %s %s failed (%s, HTTP %s); retry %d of %d in %.2fs",
                self.vendor.display_name,
                call.method,
                call.path,
                type(exc).__name__,
                getattr(exc, "status_code", None),
                retry_state.attempt_number,
                limit(exc),
                delay,
            )

        def give_up(retry_state: tenacity.RetryCallState) -> Any:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            if isinstance(exc, errors.CreditApiError) and retry_state.attempt_number > 1:
                exc.message = f"{exc.message} Gave up after {retry_state.attempt_number} attempts."
                exc.args = (exc.message,)
            assert exc is not None
            raise exc

        return {
            "stop": stop,
            "wait": wait,
            "retry": tenacity.retry_if_exception(should_retry),
            "before_sleep": before_sleep,
            "retry_error_callback": give_up,
            "reraise": True,
        }


def _certificate_failure(exc: BaseException) -> str | None:
    """Why the server's certificate was refused, when that is what ``exc`` (or what it wraps) says."""
    import ssl

    seen: BaseException | None = exc
    for _ in range(8):  # httpx -> httpcore -> ssl: a few links at most (and never loop on a cycle)
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message or seen.reason or seen)
        seen = seen.__cause__ or seen.__context__
    return None


_tls_lock = threading.Lock()
_tls_context: ssl.SSLContext | None = None


def _ssl_context() -> ssl.SSLContext:
    """The TLS settings every client shares: httpx's defaults (certifi, ``SSL_CERT_FILE``/``SSL_CERT_DIR``).

    httpx builds a new context for each client, loading the CA bundle each time (20-40 ms): the Credits
    page, which asks 20 vendors at once, spent most of its time there. One context per process, built on
    first use (or by :func:`prepare_tls`); a context is safe to share between clients and threads. A
    caller that arrives while another thread builds it waits for that one.
    """
    global _tls_context
    with _tls_lock:
        if _tls_context is None:
            try:
                _tls_context = httpx.create_ssl_context()
            except OSError as exc:  # ssl.SSLError is one: a file without certificates
                raise errors.TrustStoreError(_trust_store_message(exc)) from None
        return _tls_context


def _trust_store_message(exc: OSError) -> str:
    """What could not be loaded, from where (as httpx looks: SSL_CERT_FILE, SSL_CERT_DIR, certifi)."""
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        if value := os.environ.get(name):
            where = f"{name}={value}"
            break
    else:
        import certifi

        where = f"certifi's bundle ({certifi.where()})"
    return (
        f"Could not load the CA bundle that verifies vendors' TLS certificates from {where} "
        f"({type(exc).__name__}: {truncate(str(exc), 200)}). Point SSL_CERT_FILE (or SSL_CERT_DIR) at a "
        "PEM bundle that exists and can be read, or unset it to use certifi's."
    )


def _build_in_background() -> None:
    """:func:`_ssl_context` for :func:`prepare_tls`'s thread: a failure is raised to the first caller."""
    with contextlib.suppress(errors.TrustStoreError):
        _ssl_context()


def _after_fork_in_child() -> None:
    """A process forked while another thread held the lock (building the context) gets a lock of its own.

    The thread that held it does not exist in the child: without this, the child's first request would
    wait for it forever. A context already built is kept (the child has a copy of it).
    """
    global _tls_lock
    _tls_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


def prepare_tls() -> None:
    """Start building the shared TLS context in a background thread, unless it is built already.

    Loading the CA bundle is the biggest fixed cost of a task's first request, and OpenSSL does it without
    holding the interpreter: started before a connection is looked up, it is ready by the time the
    client needs it, on the machine's other core. Idempotent and cheap once the context exists.
    """
    if _tls_context is None and not _tls_lock.locked():
        threading.Thread(target=_build_in_background, name="credits-tls", daemon=True).start()
