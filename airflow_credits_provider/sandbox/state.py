"""The sandbox's controllable state: accounts, keys, the ledger, injected faults and recorded requests."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

#: Generic-API presets the sandbox emulates (see sandbox/presets.py).
PRESET_NAMES = (
    "zerobounce",
    "hunter",
    "neverbounce",
    "bouncer",
    "dropcontact",
    "clearout",
    "emailable",
    "debounce",
    "millionverifier",
    "findymail",
    "prospeo",
    "enrichlayer",
)

#: Keys the sandbox accepts unless told otherwise (never real keys).
DEFAULT_KEYS = {
    "leadmagic": "lm_sandbox_0123456789abcdef",
    "localleads": "ll_" + "0123456789abcdef" * 4,
    "truemail": "tm_live_sandbox_0123456789",
    **{name: f"{name}_sandbox_key_0123456789" for name in PRESET_NAMES},
}

FAULT_KINDS = (
    "status",  # answer with `status` and the vendor's documented error body
    "rate_limit",  # 429, with Retry-After when `retry_after` is set
    "slow",  # wait `delay` seconds, then answer normally
    "drop",  # close the connection without answering
    "cut",  # send headers announcing the full body, then close half-way through it
    "truncated",  # 200 with a JSON body cut short (consistent Content-Length)
    "html",  # `status` (default 502) with an HTML error page
    "wrong_types",  # 200 whose numbers are booleans, objects or non-numeric strings
    "grow_ledger",  # answer normally, then add `count` newer transactions to the ledger
)

HOSTILE_DESCRIPTIONS = (
    "Robert'); DROP TABLE credit_transactions;--",
    'Quote " and backslash \\ and tab\tend',
    "Emoji 🚀✨ and accents: café, naïve, Zürich",
    "Semicolon; newline\nsecond line",
    "x" * 5000,
)


@dataclass
class Fault:
    """One injected fault.

    :param kind: one of :data:`FAULT_KINDS`
    :param vendor: the vendor it applies to (``None``: any)
    :param path: applies to requests whose vendor-relative path starts with this (``None``: any)
    :param times: how many matching requests it affects (``-1``: until cleared)
    :param status: HTTP status for ``status`` and ``html``
    :param retry_after: ``Retry-After`` value for ``rate_limit``
    :param delay: seconds for ``slow``
    :param count: new transactions for ``grow_ledger``
    :param error_style: for LeadMagic ``"envelope"`` or ``"rfc9457"``; for LocalLeads ``"simple"`` or
        ``"nest"`` (the ``{"statusCode", "error", "message"}`` shape)
    """

    kind: str
    vendor: str | None = None
    path: str | None = None
    times: int = 1
    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0
    count: int = 0
    error_style: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; choose from {', '.join(FAULT_KINDS)}")

    def matches(self, vendor: str, path: str) -> bool:
        """Whether this fault applies to a request."""
        return (self.vendor in (None, vendor)) and (self.path is None or path.startswith(self.path))


@dataclass
class RecordedRequest:
    """A request the sandbox received (headers lower-cased)."""

    vendor: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    client_port: int = 0


def _start_of_month() -> datetime:
    now = datetime.now(timezone.utc)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _iso(moment: datetime) -> str:
    return (
        moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


class Ledger:
    """A LocalLeads transaction ledger of any size, generated on demand in O(1) memory.

    Record ``i`` (0 = oldest) is a pure function of ``i``; growing the ledger adds newer records.
    Pages are served newest first, as the vendor does, so growth shifts offsets like the real API.

    :param size: number of transactions
    :param start: time of the oldest transaction
    :param step_seconds: time between consecutive transactions
    :param hostile_every: every n-th record gets a hostile description (0: never)
    """

    def __init__(
        self,
        size: int = 0,
        *,
        start: datetime | None = None,
        step_seconds: int = 600,
        hostile_every: int = 97,
    ) -> None:
        self.size = size
        self.start = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.step_seconds = step_seconds
        self.hostile_every = hostile_every

    def __len__(self) -> int:
        return self.size

    def record(self, i: int) -> dict[str, Any]:
        """Return transaction ``i`` (0 = oldest) as the vendor's JSON."""
        created = self.start + timedelta(seconds=i * self.step_seconds)
        if i % 500 == 0:
            tx_type, amount, text = "MONTHLY_RESET", 100, "Monthly credit reset"
        elif i % 131 == 0:
            tx_type, amount, text = "TOP_UP", 250, "Credit pack purchase"
        elif i % 211 == 0:
            tx_type, amount, text = "COUPON", 25, "Coupon WELCOME25"
        else:
            tx_type, amount = "DEDUCTION", -(1 + i % 17)
            text = f"Lead search: Dentists in Austin, TX ({i % 100} results)"
        if self.hostile_every and i % self.hostile_every == 1:
            text = HOSTILE_DESCRIPTIONS[(i // self.hostile_every) % len(HOSTILE_DESCRIPTIONS)]
        return {
            "id": f"txn_{i:09d}",
            "type": tx_type,
            "amount": amount,
            "description": text,
            "createdAt": _iso(created),
        }

    def page(self, offset: int, limit: int) -> list[dict[str, Any]]:
        """Return ``limit`` records from ``offset``, newest first."""
        newest = self.size - 1
        return [self.record(newest - j) for j in range(offset, min(offset + limit, self.size))]

    def newest_first(self) -> list[dict[str, Any]]:
        """Every record, newest first (for tests on small ledgers)."""
        return self.page(0, self.size)

    def grow(self, count: int) -> None:
        """Add ``count`` transactions newer than every existing one."""
        self.size += count


@dataclass
class LeadMagicAccount:
    """LeadMagic's account state (``credits_liquid`` = ``credits`` - ``credits_frozen``)."""

    credits: Decimal = Decimal("15432.5")
    credits_frozen: Decimal = Decimal(0)
    freeze_message: str | None = None
    error_style: str = "envelope"
    #: whether GET /v1/credits returns the rich body (credits_liquid etc.) or only {"credits": n}
    rich_body: bool = True


@dataclass
class LocalLeadsAccount:
    """LocalLeads' account state."""

    monthly: Decimal = Decimal(100)
    bonus: Decimal = Decimal(25)
    used: Decimal = Decimal(43)
    reset_day: int = 1
    last_reset_at: str = field(default_factory=lambda: _iso(_start_of_month()))
    meta_style: str = "offset"  # or "page"
    error_style: str = "simple"  # 401 shape: "simple" or "nest"


@dataclass
class TrueMailAccount:
    """TrueMail's account state."""

    plan: str = "premium"
    total: Decimal = Decimal(45230)
    locked: Decimal = Decimal(1500)
    period_start: str = "2026-11-01T00:00:00Z"
    period_end: str = "2026-12-01T00:00:00Z"
    rate_limit: int = 300
    validation_types: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "mx": {"credits": 1, "available": True},
            "smtp": {"credits": 10, "available": True},
        }
    )


class SandboxState:
    """Everything the sandbox serves, safe to change from tests while the server runs.

    Change it directly (``state.leadmagic.credits = Decimal(5)``) under ``with state.lock:`` when a
    request may be in flight, or through the server's ``/_sandbox`` control API.
    """

    def __init__(self, ledger_size: int = 28) -> None:
        self.lock = threading.RLock()
        self.keys: dict[str, set[str]] = {vendor: {key} for vendor, key in DEFAULT_KEYS.items()}
        self.leadmagic = LeadMagicAccount()
        self.localleads = LocalLeadsAccount()
        self.truemail = TrueMailAccount()
        self.ledger = Ledger(ledger_size)
        #: Available credits of each generic preset's account.
        self.generic_balances: dict[str, Decimal] = {name: Decimal(5000) for name in PRESET_NAMES}
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []

    # -- keys -------------------------------------------------------------------------------------
    def set_key(self, vendor: str, key: str) -> None:
        """Make ``key`` the only key ``vendor`` accepts."""
        with self.lock:
            self.keys[vendor] = {key}

    def key_is_valid(self, vendor: str, key: str | None) -> bool:
        """Whether ``key`` is accepted for ``vendor``."""
        with self.lock:
            return key is not None and key in self.keys.get(vendor, set())

    # -- faults -----------------------------------------------------------------------------------
    def inject(self, kind: str, vendor: str | None = None, **options: Any) -> Fault:
        """Add a fault (see :class:`Fault`); faults apply in the order they were added."""
        fault = Fault(kind=kind, vendor=vendor, **options)
        with self.lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, vendor: str, path: str) -> Fault | None:
        """Consume one use of the first fault matching the request, if any."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(vendor, path):
                    if fault.times > 0:
                        fault.times -= 1
                        if fault.times == 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        with self.lock:
            self.faults.clear()

    # -- requests ---------------------------------------------------------------------------------
    def record(self, request: RecordedRequest) -> None:
        """Remember a request (for assertions)."""
        with self.lock:
            self.requests.append(request)

    def requests_for(self, vendor: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """The recorded requests, optionally only one vendor's or one path's."""
        with self.lock:
            return [
                r
                for r in self.requests
                if (vendor is None or r.vendor == vendor) and (path is None or r.path == path)
            ]

    def clear_requests(self) -> None:
        """Forget recorded requests."""
        with self.lock:
            self.requests.clear()

    # -- control API helpers ------------------------------------------------------------------------
    def update(self, vendor: str, changes: dict[str, Any]) -> None:
        """Set account fields from JSON (numbers become ``Decimal``); unknown fields are an error."""
        if vendor in self.generic_balances:  # a generic preset: only its balance and key
            with self.lock:
                for name, value in changes.items():
                    if name == "key":
                        self.set_key(vendor, str(value))
                    elif name == "credits":
                        self.generic_balances[vendor] = Decimal(str(value))
                    else:
                        raise ValueError(f"{vendor} has no field {name!r} (use credits or key)")
            return
        accounts = {"leadmagic": self.leadmagic, "localleads": self.localleads, "truemail": self.truemail}
        account = accounts[vendor]
        with self.lock:
            for name, value in changes.items():
                if name == "key":
                    self.set_key(vendor, str(value))
                    continue
                if not hasattr(account, name):
                    raise ValueError(f"{vendor} has no field {name!r}")
                current = getattr(account, name)
                setattr(account, name, Decimal(str(value)) if isinstance(current, Decimal) else value)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-friendly view of the accounts, faults and ledger size (keys excluded)."""
        with self.lock:
            return {
                "leadmagic": _jsonable(asdict(self.leadmagic)),
                "localleads": _jsonable(asdict(self.localleads)),
                "truemail": _jsonable(asdict(self.truemail)),
                "generic_balances": {name: str(value) for name, value in self.generic_balances.items()},
                "ledger_size": len(self.ledger),
                "faults": [asdict(f) for f in self.faults],
                "requests": len(self.requests),
            }


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in data.items()}
