"""Any credit API, described declaratively: where the balance is, how the key goes, what errors look like.

A :class:`CreditApiSpec` says which request returns the balance, how the key is sent (a named header, a
bearer token or a query parameter), JSON path expressions (jsonpath-ng) to the available balance and
the optional figures, which 2xx answers are errors (NeverBounce's ``status: auth_failure``, ZeroBounce's
``Credits: -1``) and where an error's message is. :data:`PRESETS` describes a dozen vendors from their
documentation; a connection picks one by name and may override any setting.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import CreditConnectionConfigError, ResponseFormatError
from airflow_credits_provider.models import CreditBalance
from airflow_credits_provider.parsing import describe, to_datetime, to_decimal
from airflow_credits_provider.vendors.base import (
    ApiRequest,
    BearerAuth,
    CreditVendor,
    HeaderKeyAuth,
    QueryKeyAuth,
    VendorErrorDetail,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    import httpx
    from pendulum import DateTime


#: How the generic API's key is sent, with the connection form's labels.
AUTH_STYLES_DISPLAY = {
    "header": "Header",
    "bearer": "Authorization: Bearer",
    "query": "Query parameter",
}
AUTH_STYLES = tuple(AUTH_STYLES_DISPLAY)


@dataclass(frozen=True)
class ErrorWhen:
    """A 2xx answer that is really an error: the value at ``path`` equals one of ``values``.

    :param path: JSON path to test
    :param values: values that mean an error (compared as strings)
    :param status: the HTTP status it stands for, which decides the error class and retries as for a
        real status: 401 an :class:`AuthenticationError`, 403 a :class:`PermissionDeniedError`, 429 a
        :class:`RateLimitedError` and 5xx a :class:`VendorUnavailableError` (both retried within the
        connection's bounds), other 4xx an :class:`InvalidRequestError`
    """

    path: str
    values: tuple[str, ...]
    status: int = 401


@dataclass(frozen=True)
class CreditApiSpec:
    """A credit API, described declaratively.

    :param name: the vendor's display name
    :param key: short identifier stored as ``CreditBalance.vendor``
    :param base_url: the documented base URL
    :param path: path of the balance request
    :param method: HTTP method of the balance request
    :param auth: ``"header"``, ``"bearer"`` or ``"query"``
    :param auth_name: the header or query parameter that carries the key
    :param available: JSON path(s) to the spendable balance; several are summed
    :param pools: named alternatives to ``available`` (e.g. Findymail ``verifier``)
    :param total: JSON path to the total balance
    :param used: JSON path to credits used
    :param locked: JSON path to credits held back
    :param plan: JSON path to the plan name
    :param reset: JSON path to the next renewal time
    :param success: JSON path and accepted values that a successful answer must have
    :param error_when: 2xx answers that are errors (e.g. sentinel values for a bad key)
    :param message: JSON paths tried, in order, for an error's message
    :param json_body: JSON body of the balance request (for POST APIs)
    """

    name: str
    key: str
    base_url: str
    path: str
    available: tuple[str, ...]
    method: str = "GET"
    auth: str = "header"
    auth_name: str = "X-API-Key"
    pools: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    total: str | None = None
    used: str | None = None
    locked: str | None = None
    plan: str | None = None
    reset: str | None = None
    success: tuple[str, tuple[str, ...]] | None = None
    error_when: tuple[ErrorWhen, ...] = ()
    message: tuple[str, ...] = ("message", "error.message", "error", "errors[0].details", "detail")
    json_body: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.auth not in AUTH_STYLES:
            raise CreditConnectionConfigError(f"auth must be one of {AUTH_STYLES}, got {self.auth!r}")
        if not self.available:
            raise CreditConnectionConfigError("a credit API needs the JSON path of its available balance")

    def check_paths(self) -> CreditApiSpec:
        """Compile every JSON path once, so that a bad expression fails before any request; return self.

        Not done on construction: the presets are built when the module is imported (at DAG parsing
        too), and the JSON path parser costs 30 ms to import.
        """
        for expression in (*self.available, *(p for ps in self.pools.values() for p in ps)):
            _compiled(expression)
        return self

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> CreditApiSpec:
        """Build a spec from a connection's extra: ``preset`` (a :data:`PRESETS` name) and/or settings.

        Settings override the preset's: ``name``, ``base_url``, ``path``, ``method``, ``auth``,
        ``auth_name``, ``available_path`` (one path or a list, summed), ``pool``, ``pools``,
        ``total_path``, ``used_path``, ``locked_path``, ``plan_path``, ``reset_path``,
        ``success_path`` + ``success_values``, ``error_when`` (list of ``{path, values, status}``),
        ``message_paths`` and ``json_body``.
        """
        preset_name = extra.get("preset")
        if preset_name:
            if preset_name not in PRESETS:
                known = ", ".join(sorted(PRESETS))
                raise CreditConnectionConfigError(
                    f"Unknown credit API preset {preset_name!r}; presets: {known}."
                )
            spec = PRESETS[preset_name]
        else:
            missing = [k for k in ("base_url", "path", "available_path") if not extra.get(k)]
            if missing:
                names = ", ".join("the host (base URL)" if k == "base_url" else k for k in missing)
                raise CreditConnectionConfigError(
                    f"A credit API connection without a preset needs {names}: choose a preset, or "
                    "describe the API in the connection's fields."
                )
            spec = cls(
                name=str(extra.get("name") or "Credit API"),
                key=str(extra.get("key") or "credit_api"),
                base_url=str(extra["base_url"]),
                path=str(extra["path"]),
                available=_paths(extra["available_path"]),
            )
        changes: dict[str, Any] = {}
        simple = {"name", "base_url", "path", "method", "auth", "auth_name", "json_body"}
        for name in simple & set(extra):
            changes[name] = extra[name]
        for name in ("total", "used", "locked", "plan", "reset"):
            if extra.get(f"{name}_path"):
                changes[name] = str(extra[f"{name}_path"])
        if extra.get("available_path") and preset_name:
            changes["available"] = _paths(extra["available_path"])
        if extra.get("pools"):
            changes["pools"] = {str(k): _paths(v) for k, v in dict(extra["pools"]).items()}
        if extra.get("success_path"):
            changes["success"] = (
                str(extra["success_path"]),
                tuple(str(v) for v in _list(extra.get("success_values"))),
            )
        if extra.get("error_when"):
            changes["error_when"] = tuple(
                ErrorWhen(
                    str(e["path"]), tuple(str(v) for v in _list(e["values"])), int(e.get("status", 401))
                )
                for e in _list(extra["error_when"])
            )
        if extra.get("message_paths"):
            changes["message"] = _paths(extra["message_paths"])
        spec = replace(spec, **changes) if changes else spec
        pool = extra.get("pool")
        if pool:
            if pool not in spec.pools:
                pools = ", ".join(sorted(spec.pools)) or "none"
                raise CreditConnectionConfigError(
                    f"{spec.name} has no balance pool {pool!r}; pools: {pools}."
                )
            spec = replace(
                spec, available=spec.pools[pool], key=f"{spec.key}:{pool}", name=f"{spec.name} ({pool})"
            )
        return spec.check_paths()


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _paths(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in _list(value) if v)


@functools.lru_cache(maxsize=256)
def _compiled(expression: str) -> Any:
    from jsonpath_ng.exceptions import JsonPathParserError
    from jsonpath_ng.ext import parse  # type: ignore[attr-defined]

    try:
        return parse(expression)
    except (JsonPathParserError, Exception) as exc:  # the parser raises bare Exceptions too
        raise CreditConnectionConfigError(f"Invalid JSON path {expression!r}: {exc}") from None


def _find(payload: Any, expression: str) -> list[Any]:
    return [match.value for match in _compiled(expression).find(payload)]


def _one(payload: Any, expression: str, *, required: bool) -> Any:
    found = _find(payload, expression)
    if not found:
        if required:
            raise ResponseFormatError(f"field {expression!r} is missing")
        return None
    return found[0]


class GenericCreditVendor(CreditVendor):
    """A credit API described by a :class:`CreditApiSpec`."""

    key = "credit_api"
    display_name = "Credit API"
    default_base_url = "https://"
    balance_request = ApiRequest("GET", "/")
    key_hint = "The vendor's API key"
    hook_class_name = "airflow_credits_provider.hooks.generic.GenericCreditHook"
    generic = True

    @classmethod
    def hook_name(cls) -> str:
        """The connection type's name in Airflow's UI."""
        return "Credit API (generic)"

    @classmethod
    def name_for(cls, key: str) -> str | None:
        """The generic type's own name, or a preset's display name."""
        if key == cls.key:
            return cls.display_name
        return PRESETS[key].name if key in PRESETS else None

    def __init__(self, spec: CreditApiSpec) -> None:
        self.spec = spec
        self.key = spec.key
        self.display_name = spec.name
        self.default_base_url = spec.base_url
        self.balance_request = ApiRequest(spec.method.upper(), spec.path, json=spec.json_body)

    def auth(self, api_key: str) -> httpx.Auth:
        """Header, bearer or query parameter, as the spec says."""
        if self.spec.auth == "bearer":
            return BearerAuth(api_key)
        if self.spec.auth == "query":
            return QueryKeyAuth(self.spec.auth_name, api_key)
        return HeaderKeyAuth(self.spec.auth_name, api_key)

    def error_in_success(self, payload: Any) -> tuple[int, VendorErrorDetail] | None:
        """Sentinels and failed success conditions in a 2xx answer."""
        for condition in self.spec.error_when:
            if any(str(v) in condition.values for v in _find(payload, condition.path)):
                return condition.status, self.parse_error(payload)
        if self.spec.success is not None:
            path, accepted = self.spec.success
            if not any(str(v) in accepted for v in _find(payload, path)):
                return 400, self.parse_error(payload)
        return None

    def parse_error(self, payload: Any) -> VendorErrorDetail:
        """The first message found on the spec's message paths."""
        if not isinstance(payload, (dict, list)):
            return VendorErrorDetail()
        for expression in self.spec.message:
            for value in _find(payload, expression):
                if isinstance(value, str) and value:
                    return VendorErrorDetail(message=value)
        return VendorErrorDetail()

    def parse_balance(self, payload: Any, fetched_at: DateTime) -> CreditBalance:
        """Sum the available paths; read the optional figures."""
        spec = self.spec
        available = sum(
            (to_decimal(_one(payload, p, required=True), p) for p in spec.available), to_decimal(0, "")
        )

        def amount(path: str | None) -> Any:
            value = _one(payload, path, required=False) if path else None
            return None if value is None else to_decimal(value, path or "")

        plan = _one(payload, spec.plan, required=False) if spec.plan else None
        if plan is not None and not isinstance(plan, str):
            raise ResponseFormatError(f"field {spec.plan!r} should be a string but is {describe(plan)}")
        reset = _one(payload, spec.reset, required=False) if spec.reset else None
        return CreditBalance(
            vendor=spec.key,
            vendor_name=spec.name,
            available=available,
            total=amount(spec.total),
            used=amount(spec.used),
            locked=amount(spec.locked),
            plan=plan,
            next_reset_at=to_datetime(reset, spec.reset or "") if reset is not None else None,
            fetched_at=fetched_at,
            raw=payload if isinstance(payload, dict) else {"response": payload},
        )


def _preset(**kwargs: Any) -> CreditApiSpec:
    available = kwargs.pop("available")
    return CreditApiSpec(available=_paths(available), **kwargs)


#: Vendors described from their documented balance request and response (see docs/generic.md).
PRESETS: dict[str, CreditApiSpec] = {
    spec.key: spec
    for spec in (
        _preset(
            name="ZeroBounce",
            key="zerobounce",
            base_url="https://api.zerobounce.net",
            path="/v2/getcredits",
            auth="query",
            auth_name="api_key",
            available="Credits",
            error_when=(ErrorWhen("Credits", ("-1",), 401),),
            message=("error", "message"),
        ),
        _preset(
            name="Hunter",
            key="hunter",
            base_url="https://api.hunter.io",
            path="/v2/account",
            auth="query",
            auth_name="api_key",
            available="data.requests.credits.remaining",
            used="data.requests.credits.used",
            plan="data.plan_name",
            reset="data.reset_date",
            # Each pool has used, available (the plan's allowance) and remaining (what is left).
            pools={
                "searches": ("data.requests.searches.remaining",),
                "verifications": ("data.requests.verifications.remaining",),
            },
            message=("errors[0].details", "errors[0].id"),
        ),
        _preset(
            name="NeverBounce",
            key="neverbounce",
            base_url="https://api.neverbounce.com",
            path="/v4/account/info",
            auth="query",
            auth_name="key",
            available=("credits_info.paid_credits_remaining", "credits_info.free_credits_remaining"),
            used="credits_info.paid_credits_used",
            # Every NeverBounce error is HTTP 200 with a status; two of them mean "try again shortly".
            error_when=(
                ErrorWhen("status", ("auth_failure",), 401),
                ErrorWhen("status", ("bad_referrer",), 403),
                ErrorWhen("status", ("throttle_triggered",), 429),
                ErrorWhen("status", ("temp_unavail",), 503),
                ErrorWhen("status", ("general_failure",), 400),
            ),
            success=("status", ("success",)),
            message=("message",),
        ),
        _preset(
            name="Bouncer",
            key="bouncer",
            base_url="https://api.usebouncer.com",
            path="/v1.1/credits",
            auth="header",
            auth_name="x-api-key",
            available="credits",
            message=("message", "error"),
        ),
        _preset(
            name="Dropcontact",
            key="dropcontact",
            base_url="https://api.dropcontact.com",
            path="/v1/account/credits",
            auth="header",
            auth_name="X-Access-Token",
            available="credits",
            message=("reason", "message", "error"),
        ),
        _preset(
            name="Clearout",
            key="clearout",
            base_url="https://api.clearout.io",
            path="/v2/email_verify/getcredits",
            auth="bearer",
            available="data.available_credits",
            success=("status", ("success",)),
            message=("error.message", "message"),
        ),
        _preset(
            name="Emailable",
            key="emailable",
            base_url="https://api.emailable.com",
            path="/v1/account",
            auth="query",
            auth_name="api_key",
            available="available_credits",
            message=("message",),
        ),
        _preset(
            name="DeBounce",
            key="debounce",
            base_url="https://api.debounce.io",
            path="/v1/balance/",
            auth="query",
            auth_name="api",
            available="balance",
            error_when=(ErrorWhen("success", ("0",), 401),),
            message=("debounce.error", "error", "message"),
        ),
        _preset(
            name="MillionVerifier",
            key="millionverifier",
            base_url="https://api.millionverifier.com",
            path="/api/v3/credits",
            auth="query",
            auth_name="api",
            available="credits",
            error_when=(ErrorWhen("result", ("error",), 401),),
            message=("error", "message"),
        ),
        _preset(
            name="Findymail",
            key="findymail",
            base_url="https://app.findymail.com",
            path="/api/credits",
            auth="bearer",
            available="credits",
            pools={"finder": ("credits",), "verifier": ("verifier_credits",)},
            message=("message", "error"),
        ),
        _preset(
            name="Prospeo",
            key="prospeo",
            base_url="https://api.prospeo.io",
            path="/account-information",
            method="POST",
            auth="header",
            auth_name="X-KEY",
            available="response.remaining_credits",
            plan="response.current_plan",
            error_when=(ErrorWhen("error", ("True", "true"), 401),),
            message=("message", "error_code"),
            json_body={},
        ),
        _preset(
            name="Enrich Layer",
            key="enrichlayer",
            base_url="https://enrichlayer.com",
            path="/api/v2/credit-balance",
            auth="bearer",
            available="credit_balance",
            message=("description", "message", "error"),
        ),
    )
}
