"""The sandbox's controllable state: accounts, keys, the ledger, injected faults and recorded requests."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from airflow_credits_provider.sandbox.emulators.base import registered_emulators

_EMULATORS = registered_emulators()

#: Generic-API presets the sandbox emulates (see sandbox/emulators/presets.py).
PRESET_NAMES = tuple(key for key, emulator in _EMULATORS.items() if emulator.preset)

#: Named vendors the sandbox emulates, each served under its key.
NAMED_VENDORS = tuple(key for key, emulator in _EMULATORS.items() if not emulator.preset)

#: Keys the sandbox accepts unless told otherwise (never real keys). A state built later also takes
#: the emulations registered after this module was imported.
DEFAULT_KEYS = {key: emulator.default_key for key, emulator in _EMULATORS.items()}

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
    "short_page",  # a ledger page with only `count` of its rows; its metadata (total) unchanged
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
    :param count: new transactions for ``grow_ledger``; rows kept for ``short_page``
    :param after: matching requests to let through untouched before the fault applies
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
    after: int = 0

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
    #: When it arrived (``time.monotonic()``), and how many requests were being answered then, itself
    #: included (concurrency as the vendor sees it).
    at: float = 0.0
    in_flight: int = 0
    #: The kind of injected fault that answered it (``"rate_limit"``, ``"status"``, ...), if any. Set
    #: when the fault is taken, after the latency: with requests in flight side by side, the n-th to
    #: arrive is not always the n-th to be answered.
    fault: str | None = None


def start_of_month() -> datetime:
    """The start of the current month (UTC)."""
    now = datetime.now(timezone.utc)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def start_of_next_month() -> datetime:
    """The start of the next month (UTC): when the sandbox's monthly plans renew."""
    start = start_of_month()
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def iso(moment: datetime) -> str:
    """``moment`` as the vendors print times (milliseconds, ``Z``)."""
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
        #: Fields that replace generated ones, by record index (exact amounts, hostile ids, ...).
        self.overrides: dict[int, dict[str, Any]] = {}
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
        record: dict[str, Any] = {
            "id": f"txn_{i:09d}",
            "type": tx_type,
            "amount": amount,
            "description": text,
            "createdAt": iso(created),
        }
        if i in self.overrides:
            record.update(self.overrides[i])
        return record

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


class SandboxState:
    """Everything the sandbox serves, safe to change from tests while the server runs.

    Each emulated vendor has an account (:meth:`account`, or the vendor's key as an attribute:
    ``state.leadmagic.credits = Decimal(5)``); change it under ``with state.lock:`` when a request may be
    in flight, or through the server's ``/_sandbox`` control API.
    """

    def __init__(self, ledger_size: int = 28) -> None:
        self.lock = threading.RLock()
        emulators = registered_emulators()
        self.keys: dict[str, set[str]] = {key: {e.default_key} for key, e in emulators.items()}
        self.accounts: dict[str, Any] = {key: e.new_account() for key, e in emulators.items()}
        self.ledger = Ledger(ledger_size)
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        #: What the sandbox's SMTP inbox received (``sandbox.inbox``): from, to, subject, text.
        self.inbox: list[dict[str, Any]] = []
        self.latency = 0.0
        self.latency_jitter = 0.0
        self.in_flight = 0
        self.peak_in_flight = 0

    # -- latency ----------------------------------------------------------------------------------
    def set_latency(self, seconds: float, jitter: float = 0.0) -> None:
        """Make every vendor answer wait ``seconds`` plus up to ``jitter`` more (uniform), as a network does.

        The control API (``/_sandbox``) answers at once. Concurrent requests wait side by side, as they
        would on the network: the latency is per answer, not a queue.
        """
        for name, value in (("seconds", seconds), ("jitter", jitter)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 3600:
                raise ValueError(f"latency {name} must be a number of seconds from 0 to 3600, got {value!r}")
        with self.lock:
            self.latency, self.latency_jitter = float(seconds), float(jitter)

    def answer_delay(self) -> float:
        """Seconds the next vendor answer waits (the latency plus its jitter)."""
        import random

        with self.lock:
            latency, jitter = self.latency, self.latency_jitter
        return latency + (random.uniform(0, jitter) if jitter else 0.0)  # noqa: S311 - not cryptography

    def account(self, vendor: str) -> Any:
        """The account state of ``vendor`` (a dataclass of its emulator's)."""
        return self.accounts[vendor]

    def __getattr__(self, name: str) -> Any:
        # state.leadmagic is state.account("leadmagic"); only called for names not found otherwise.
        accounts = self.__dict__.get("accounts", {})
        if name in accounts:
            return accounts[name]
        raise AttributeError(f"{type(self).__name__!r} has no attribute or vendor account {name!r}")

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
                    if fault.after > 0:
                        fault.after -= 1
                        continue
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

    def begin_answer(self) -> int:
        """A vendor request is being answered: count it; return how many are (itself included)."""
        with self.lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            return self.in_flight

    def end_answer(self) -> None:
        """A vendor request was answered (or dropped)."""
        with self.lock:
            self.in_flight -= 1

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
        """Set account fields (or ``key``) from JSON (numbers become ``Decimal``); unknown fields fail."""
        if vendor not in self.accounts:
            raise ValueError(f"no sandbox vendor {vendor!r}; use one of {', '.join(self.accounts)}")
        account = self.accounts[vendor]
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
                **{vendor: _jsonable(asdict(account)) for vendor, account in self.accounts.items()},
                "ledger_size": len(self.ledger),
                "faults": [asdict(f) for f in self.faults],
                "requests": len(self.requests),
            }


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in data.items()}
