"""Typed, vendor-neutral records returned by the credit hooks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

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
    :param unit_prices: per-service prices the vendor reports (TrueMail validation types)
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
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (for XCom and trigger events).

        Decimals become strings so that no precision is lost; times become ISO 8601 strings.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
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


@dataclass(frozen=True)
class CreditTransaction:
    """One entry of a vendor's credit ledger.

    :param id: the vendor's transaction id
    :param type: the vendor's type label, kept as free text (``DEDUCTION``, ``MONTHLY_RESET``, ...)
    :param amount: signed amount: negative for spending, positive for grants and top-ups
    :param description: the vendor's description
    :param created_at: when the transaction happened (UTC)
    :param raw: the vendor's JSON record as received
    """

    id: str
    type: str
    amount: Decimal
    description: str | None
    created_at: DateTime
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
