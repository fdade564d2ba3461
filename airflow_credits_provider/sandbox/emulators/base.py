"""What every vendor emulation shares: requests and replies, and the :class:`Emulator` registry.

Each module in this package emulates one vendor (or, for the generic presets, several): an
:class:`Emulator` with the vendor's key (its URL prefix on the sandbox), the sandbox's API key for it,
its account state, its documented answers and error bodies, and how the ``wrong_types`` fault corrupts
its answers. Creating an emulator registers it; :func:`registered_emulators` imports every module here,
so a new vendor's emulation is found without being listed anywhere.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox.state import SandboxState

#: Generic error codes and messages by status, for vendors whose bodies carry both.
REASONS = {
    400: ("bad_request", "The request is malformed."),
    401: ("invalid_api_key", "Invalid API key. The key does not exist or is incorrect."),
    402: ("insufficient_credits", "Insufficient credits to complete this request."),
    403: ("plan_upgrade_required", "Your plan does not include this endpoint."),
    404: ("not_found", "The requested resource was not found."),
    422: ("unprocessable", "The request could not be processed."),
    429: ("rate_limited", "Rate limit exceeded"),
    500: ("internal_error", "Internal server error."),
    502: ("bad_gateway", "Bad gateway."),
    503: ("service_unavailable", "Service temporarily unavailable."),
}


@dataclass
class Request:
    """A parsed sandbox request (vendor-relative ``path``; lower-cased header names)."""

    vendor: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> Any:
        """The JSON body, or ``None`` when absent or invalid."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def bearer(self) -> str | None:
        """The bearer token, if any."""
        auth = self.headers.get("authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None


@dataclass
class Reply:
    """A response to send."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        """The body as bytes (JSON-encoded unless already bytes); decimals as exact JSON numbers."""
        if isinstance(self.body, bytes):
            return self.body
        text = json.dumps(self.body, default=json_number)
        return _EXACT_NUMBER.sub(r"\1", text).encode()


#: json.dumps cannot write a Decimal as a number; json_number marks it, Reply.encoded unquotes it.
_EXACT_NUMBER = re.compile(r'"\\u0000dec:([-+0-9.Ee]+)"')


def json_number(value: Any) -> Any:
    """Decimals as JSON numbers, every digit kept (integers stay integers)."""
    if isinstance(value, Decimal):
        if value == value.to_integral_value() and abs(value.adjusted()) < 30:
            return int(value)
        return f"\u0000dec:{value}"
    raise TypeError(type(value).__name__)


def now_iso() -> str:
    """The current time as the vendors print it (``2026-11-21T10:00:00.000Z``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class BalanceAccount:
    """The simplest account: one balance."""

    credits: Decimal = Decimal(5000)


class Emulator:
    """One vendor's emulation. Subclasses set ``key`` and ``default_key`` and implement :meth:`handle`.

    :param key: the vendor's key, also its URL prefix on the sandbox (``/leadmagic/...``)
    :param default_key: the API key the sandbox accepts unless told otherwise (never a real key)
    """

    #: Every emulator by key, filled as emulators are created.
    registry: ClassVar[dict[str, Emulator]] = {}

    key: str
    default_key: str
    #: The account state: a dataclass whose fields the control API sets by name.
    account_type: type = BalanceAccount
    #: Whether the vendor is a generic preset (a ``credit_api`` connection) rather than a named vendor.
    preset: bool = False

    def __init__(self) -> None:
        Emulator.registry[self.key] = self

    def new_account(self) -> Any:
        """A fresh account state."""
        return self.account_type()

    def handle(self, request: Request, state: SandboxState) -> Reply:
        """Answer a request (faults are applied by the server around this)."""
        raise NotImplementedError

    def error(self, status: int, state: SandboxState, message: str | None = None, **options: Any) -> Reply:
        """The vendor's documented error body for ``status`` (used by faults and by :meth:`handle`).

        :param options: ``code`` (a machine-readable error code) and ``style`` (a vendor's alternative
            error shape), for vendors that have them
        """
        return Reply(status, {"error": message or REASONS.get(status, ("error", "Unexpected error."))[1]})

    def corrupt(self, body: Any) -> Any:
        """A successful body with its numbers broken, as the ``wrong_types`` fault serves it."""
        return numbers_to_booleans(body)


def numbers_to_booleans(node: Any) -> Any:
    """Every number (and numeric string) in ``node`` turned into ``true``."""
    if isinstance(node, dict):
        return {k: numbers_to_booleans(v) for k, v in node.items()}
    if isinstance(node, list):
        return [numbers_to_booleans(v) for v in node]
    if isinstance(node, (int, float, Decimal)) and not isinstance(node, bool):
        return True
    if isinstance(node, str) and node.lstrip("-").replace(".", "", 1).isdigit():
        return True
    return node


def registered_emulators() -> dict[str, Emulator]:
    """Every emulator by key: the named vendors first, then the generic presets."""
    import importlib
    import pkgutil
    from pathlib import Path

    package = __name__.rpartition(".")[0]  # this module's package: every emulator module beside it
    for module in sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])):
        if module != "base":
            importlib.import_module(f"{package}.{module}")
    return dict(sorted(Emulator.registry.items(), key=lambda item: (item[1].preset, item[0])))
