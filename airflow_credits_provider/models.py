"""Typed, vendor-neutral records returned by the credit hooks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from pendulum import DateTime


@dataclass(frozen=True)
class UnitPrice:
    """What one unit of a vendor service costs, as the vendor reports it.

    :param name: the vendor's name for the service, e.g. TrueMail's ``"smtp"``
    :param credits: credits charged per unit (per email, per lead)
    :param available: whether the account's plan may use the service at all
    :param upgrade_required: the vendor's explanation when ``available`` is false
    """

    name: str
    credits: Decimal
    available: bool = True
    upgrade_required: str | None = None


@dataclass(frozen=True)
class CreditBalance:
    """A credit balance, normalised across vendors.

    ``available`` is always what can be spent right now; the other amounts are filled where the vendor
    reports them and are ``None`` otherwise. Amounts are exact ``Decimal``; times are timezone-aware.

    :param vendor: the vendor's key, e.g. ``"leadmagic"``
    :param vendor_name: the vendor's display name, e.g. ``"LeadMagic"``; the hooks always set it, and a
        balance built without one is named by its key (the vendor registry sits above these models)
    :param available: credits that can be spent now
    :param total: the vendor's headline balance (LeadMagic ``credits``, LocalLeads monthly + bonus)
    :param monthly: plan credits granted per period
    :param bonus: bonus credits (carried forward, spent first)
    :param used: credits used in the current period
    :param locked: credits held back (LeadMagic frozen, TrueMail locked for bulk jobs in progress)
    :param locked_reason: the vendor's explanation of the locked amount
    :param plan: the plan name, when reported
    :param period_start: start of the current billing period
    :param period_end: end of the current billing period
    :param next_reset_at: when plan credits renew next
    :param unit_prices: per-service prices the vendor reports (TrueMail validation types today; any
        vendor description may fill them)
    :param fetched_at: when the balance was fetched (UTC)
    :param raw: the vendor's JSON payload as received
    """

    vendor: str
    available: Decimal
    fetched_at: DateTime
    total: Decimal | None = None
    monthly: Decimal | None = None
    bonus: Decimal | None = None
    used: Decimal | None = None
    locked: Decimal | None = None
    locked_reason: str | None = None
    plan: str | None = None
    period_start: DateTime | None = None
    period_end: DateTime | None = None
    next_reset_at: DateTime | None = None
    unit_prices: Mapping[str, UnitPrice] = field(default_factory=dict)
    vendor_name: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.vendor_name:
            object.__setattr__(self, "vendor_name", self.vendor)

    def unit_price(self, service: str) -> UnitPrice:
        """The price of one unit of ``service`` (e.g. TrueMail's ``"smtp"``), if the plan may run it.

        :raises UnknownValidationTypeError: the vendor reports no price for ``service``
        :raises ValidationTypeUnavailableError: the plan cannot run it (with the vendor's upgrade text)
        """
        from airflow_credits_provider.errors import (
            UnknownValidationTypeError,
            ValidationTypeUnavailableError,
        )

        if service not in self.unit_prices:
            if not self.unit_prices:
                raise UnknownValidationTypeError(
                    f"{self.vendor_name} reports no per-unit prices, so the price of {service!r} is "
                    "unknown: pass unit_cost instead."
                )
            known = ", ".join(sorted(self.unit_prices))
            raise UnknownValidationTypeError(
                f"{self.vendor_name} reports no price for {service!r} (known: {known})."
            )
        price = self.unit_prices[service]
        if not price.available:
            why = price.upgrade_required or "not available on this plan"
            raise ValidationTypeUnavailableError(
                f"{self.vendor_name} cannot run {service!r} on this plan ({self.plan or 'unknown plan'}): "
                f"{why}. No balance would cover it; upgrade the plan or choose another service.",
                vendor=self.vendor,
                vendor_name=self.vendor_name,
                error_code="upgrade_required",
            )
        return price

    def to_dict(self, *, include_raw: bool = False) -> dict[str, Any]:
        """Return a JSON-friendly dict (for XCom, trigger events and the CLI).

        Decimals become strings so that no precision is lost; times become ISO 8601 strings.

        :param include_raw: include the vendor's payload as ``raw``. Off by default: it can be large,
            and what is pushed to XCom or stored with a trigger event should be the normalised figures.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "raw" and not include_raw:
                continue
            if f.name == "unit_prices":
                value = {
                    name: {
                        "name": p.name,
                        "credits": str(p.credits),
                        "available": p.available,
                        "upgrade_required": p.upgrade_required,
                    }
                    for name, p in value.items()
                }
            elif f.name == "raw":
                value = dict(value)
            elif isinstance(value, Decimal):
                value = str(value)
            elif value is not None and hasattr(value, "isoformat"):
                value = value.isoformat()
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CreditBalance:
        """Rebuild a balance from :meth:`to_dict` output."""
        import pendulum

        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if value is None:
                kwargs[f.name] = None
            elif f.name == "unit_prices":
                kwargs[f.name] = {
                    name: UnitPrice(
                        name=p["name"],
                        credits=Decimal(p["credits"]),
                        available=bool(p["available"]),
                        upgrade_required=p.get("upgrade_required"),
                    )
                    for name, p in value.items()
                }
            elif f.name in _DECIMAL_FIELDS:
                kwargs[f.name] = Decimal(value)
            elif f.name in _TIME_FIELDS:
                kwargs[f.name] = pendulum.parse(value)
            else:
                kwargs[f.name] = value
        return cls(**kwargs)


_DECIMAL_FIELDS = frozenset({"available", "total", "monthly", "bonus", "used", "locked"})
_TIME_FIELDS = frozenset({"fetched_at", "period_start", "period_end", "next_reset_at"})


class CreditTransaction(msgspec.Struct, frozen=True):
    """One entry of a vendor's credit ledger (immutable).

    A ``msgspec.Struct``, not a dataclass: a backfill builds a million of these, and a frozen dataclass
    costs ten times more to build. ``msgspec.structs.asdict`` turns one into a ``dict``. Equality
    compares every field, ``raw`` included; the ``repr`` leaves ``raw`` out.

    :param id: the vendor's transaction id
    :param type: the vendor's type label, kept as free text (``DEDUCTION``, ``MONTHLY_RESET``, ...)
    :param amount: signed amount: negative for spending, positive for grants and top-ups
    :param description: the vendor's description
    :param created_at: when the transaction happened, an aware ``datetime`` in UTC (a plain ``datetime``,
        not a pendulum ``DateTime``, for the same reason)
    :param raw: the vendor's JSON record as received
    """

    id: str
    type: str
    amount: Decimal
    description: str | None
    created_at: datetime
    raw: Mapping[str, Any] = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"CreditTransaction(id={self.id!r}, type={self.type!r}, amount={self.amount!r}, "
            f"description={self.description!r}, created_at={self.created_at!r})"
        )


@dataclass(frozen=True)
class TransactionPage:
    """One page of a vendor's credit ledger, newest first.

    :param transactions: the page's transactions
    :param total: the ledger's size as the vendor reported it with this page (``None``: not reported)
    :param offset: the offset requested
    :param limit: the page size requested
    """

    transactions: list[CreditTransaction]
    total: int | None
    offset: int
    limit: int
