"""Credit alerts: what to warn about, and when a warning is due. Pure values and rules, no I/O.

An :class:`AlertRule` watches one budget or one account and names the notifier that tells people. Its
kind says what it watches:

- ``budget``: the budget's spent + held credits reach a percentage of its cap (``thresholds: [50, 80,
  100]``), once per budget period;
- ``budget_forecast``: at this period's pace, the budget's spend will pass a percentage of its cap
  before the period renews, once per period;
- ``balance``: the account's free credits (its available balance minus what active reservations hold)
  fall below an amount (``thresholds: [5000, 1000]``), once per dip;
- ``depleted``: the account's free credits are gone (zero or less), once per dip;
- ``runway``: the account runs dry within a number of days (``thresholds: [7, 3]``), judged up to the
  vendor's renewal as the runway is (an account renewed before it runs dry is not short), once per dip;
- ``expiring``: at the current pace, plan credits will reset unspent at the next renewal: an amount
  (``thresholds: [5000]``) or a percentage of the plan (``thresholds: ["20%"]``), once per renewal.

A *dip* lasts from the crossing until the watched value is back at or above the threshold; then the rule
is armed again, and (with ``recovered: true``, the default) a recovery is sent, once per dip.

Each crossing is a :class:`Crossing`, identified by ``(rule, subject, threshold, period, event)``. The
store claims that key in the reservation database (a unique row) in the transaction that sees the
crossing, so however many runs or checkers see it, one message is sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timezone
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import AlertRuleError
from airflow_credits_provider.parsing import decimal_text, exact_arithmetic, grouped_amount, to_amount

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from airflow_credits_provider.budgets import BudgetState

#: What each kind watches: the subject's kind and the thresholds' unit.
KINDS: dict[str, tuple[str, str]] = {
    "budget": ("budget", "percent"),
    "budget_forecast": ("budget", "percent"),
    "balance": ("account", "credits"),
    "depleted": ("account", "none"),
    "runway": ("account", "days"),
    "expiring": ("account", "credits or percent"),
}
#: Kinds whose crossing lasts until the value is back (a dip), not until a period ends.
DIP_KINDS = frozenset({"balance", "depleted", "runway"})
#: Kinds a reservation or a release can cross inside its own transaction.
IN_TRANSACTION_KINDS = frozenset({"budget", "balance", "depleted"})
#: Names for the notifiers Airflow's providers ship; any other is a ``BaseNotifier`` import path.
NOTIFIER_ALIASES = {
    "smtp": "airflow.providers.smtp.notifications.smtp.SmtpNotifier",
    "slack_webhook": "airflow.providers.slack.notifications.slack_webhook.SlackWebhookNotifier",
}
CROSSED, RECOVERED = "crossed", "recovered"
MAX_NAME = 255
MAX_THRESHOLDS = 10
_IMPORT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


@dataclass(frozen=True)
class AlertRule:
    """What to warn about, and whom to tell.

    :param name: the rule's name (``airflow-credits alerts show NAME``)
    :param kind: one of :data:`KINDS`
    :param subject: the budget's name (``budget``, ``budget_forecast``) or the reservation account
        (the others: a credit connection id, or the ``account=`` several connections share)
    :param thresholds: percents of the cap, credit amounts, days, or (``expiring``) credits or ``"N%"``
        of the plan; empty for ``depleted``
    :param notifier: ``smtp``, ``slack_webhook`` or the import path of an Airflow ``BaseNotifier``
    :param notifier_args: the notifier's arguments (``to``, ``smtp_conn_id``, ...); its message fields
        default to the alert's text (``subject``/``html_content``, ``text``) and may use ``{{ alert.* }}``
    :param credit_conn_id: the credit connection whose balance an account rule reads (default: the
        subject); for an account several connections share
    :param recovered: also send a recovery when a dip ends (dip kinds only)
    :param description: free text
    """

    name: str
    kind: str
    subject: str
    thresholds: tuple[str, ...]
    notifier: str
    notifier_args: Mapping[str, Any] = field(default_factory=dict)
    credit_conn_id: str = ""
    recovered: bool = True
    description: str = ""

    @classmethod
    def parse(
        cls,
        *,
        name: Any,
        kind: Any,
        subject: Any,
        notifier: Any,
        thresholds: Any = (),
        notifier_args: Any = None,
        credit_conn_id: Any = None,
        recovered: Any = True,
        description: Any = "",
    ) -> AlertRule:
        """A rule from user input (CLI, file, DB row); every problem raises :class:`AlertRuleError`."""
        name = _name(name, "name", "Alert rule: ")
        where = f"Alert rule {name!r}: "
        if kind not in KINDS:
            raise AlertRuleError(f"{where}kind must be one of {', '.join(KINDS)}, got {_shown(kind)}.")
        subject = _name(subject, KINDS[kind][0], where)
        args = {} if notifier_args is None else notifier_args
        if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
            raise AlertRuleError(f"{where}notifier_args must be a mapping of argument names to values.")
        if not isinstance(recovered, bool):
            raise AlertRuleError(f"{where}recovered must be true or false, got {_shown(recovered)}.")
        return cls(
            name=name,
            kind=kind,
            subject=subject,
            thresholds=_thresholds(kind, thresholds, where),
            notifier=_notifier(notifier, where),
            notifier_args=args,
            credit_conn_id=_name(credit_conn_id, "credit_conn_id", where) if credit_conn_id else "",
            recovered=recovered,
            description="" if description is None else str(description),
        )

    @property
    def subject_kind(self) -> str:
        """``"budget"`` or ``"account"``."""
        return KINDS[self.kind][0]

    @property
    def balance_conn_id(self) -> str:
        """The credit connection an account rule reads: ``credit_conn_id``, or the subject."""
        return self.credit_conn_id or self.subject

    @property
    def notifier_path(self) -> str:
        """The notifier's import path (aliases resolved)."""
        return NOTIFIER_ALIASES.get(self.notifier, self.notifier)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (CLI ``--json``, the Credits pages, files that ``alerts import`` reads)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "subject": self.subject,
            "thresholds": list(self.thresholds),
            "notifier": self.notifier,
            "notifier_args": dict(self.notifier_args),
            "credit_conn_id": self.credit_conn_id or None,
            "recovered": self.recovered,
            "description": self.description,
        }


@dataclass(frozen=True)
class Crossing:
    """One warning that is due: the key the store claims, and what the message says.

    :param rule: the rule's name
    :param subject: the budget or account
    :param threshold: the threshold as written in the rule (``"80"``, ``"20%"``; ``""`` for ``depleted``)
    :param period: which period or dip it belongs to (a budget period's start, ``"dip-3"``, a renewal)
    :param event: :data:`CROSSED` or :data:`RECOVERED`
    :param title: one line (an e-mail's subject)
    :param text: what crossed, the numbers, the period or renewal and what to do
    :param facts: the numbers, JSON-friendly (exact decimal strings)
    """

    rule: str
    subject: str
    threshold: str
    period: str
    event: str
    title: str
    text: str
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """What makes it unique: one message per key, ever."""
        return (self.rule, self.subject, self.threshold, self.period, self.event)


# -- when a warning is due ------------------------------------------------------------------------------
def budget_crossings(rule: AlertRule, state: BudgetState) -> list[Crossing]:
    """The ``budget`` thresholds that ``state`` (spent + held) has reached this period."""
    b = state.budget
    with exact_arithmetic():
        used = state.spent + state.held
    out = []
    for threshold in rule.thresholds:
        with exact_arithmetic():
            line = b.cap * Decimal(threshold) / 100
        if used >= line and b.cap > 0:
            share = _percent(used, b.cap)
            out.append(
                _crossing(
                    rule,
                    threshold,
                    _period(state),
                    CROSSED,
                    f"Budget {b.name!r} reached {threshold}% of its cap",
                    f"Credit budget {b.name!r} (account {b.account!r}) has used {grouped_amount(used)} of "
                    f"{grouped_amount(b.cap)} credits ({share}%) {_PERIOD_WORDS[b.period]}: "
                    f"{grouped_amount(state.spent)} spent and {grouped_amount(state.held)} held by running "
                    f"DAGs. It renews {_when(state.period_end)}. Raise its cap (`airflow-credits budgets "
                    f"set {b.name} --cap ...`) or slow the DAGs that draw on it.",
                    budget_facts(state, threshold),
                )
            )
    return out


def budget_forecast_crossings(rule: AlertRule, state: BudgetState, now: datetime) -> list[Crossing]:
    """The ``budget_forecast`` thresholds this period's pace will pass before the budget renews.

    ``now`` is aware, or naive UTC.

    The pace is what was used so far over the part of the period that has passed; it is judged once at
    least an hour and a twentieth of the period have passed (earlier, one run would look like a trend).
    """
    b = state.budget
    if now.tzinfo is None:  # the store's clock: naive UTC
        now = now.replace(tzinfo=timezone.utc)
    elapsed = (now - state.period_start).total_seconds()
    length = (state.period_end - state.period_start).total_seconds()
    if elapsed < max(3600.0, length / 20) or elapsed >= length:
        return []
    with exact_arithmetic():
        used = state.spent + state.held
    projected = (used * Decimal(length) / Decimal(elapsed)).quantize(Decimal("0.01"))
    out = []
    for threshold in rule.thresholds:
        with exact_arithmetic():
            line = b.cap * Decimal(threshold) / 100
        if projected >= line and used < line and b.cap > 0:
            out.append(
                _crossing(
                    rule,
                    threshold,
                    _period(state),
                    CROSSED,
                    f"Budget {b.name!r} is on pace to pass {threshold}% of its cap",
                    f"At this period's pace, credit budget {b.name!r} (account {b.account!r}) will spend "
                    f"about {grouped_amount(projected)} of its {grouped_amount(b.cap)} credits before it "
                    f"renews {_when(state.period_end)}: {grouped_amount(used)} used so far. Raise its cap or "
                    "slow the DAGs that draw on it before they are refused.",
                    {**budget_facts(state, threshold), "projected": decimal_text(projected)},
                )
            )
    return out


def below(rule: AlertRule, value: Decimal | None, plan: Decimal | None = None) -> dict[str, bool]:
    """For each threshold of a dip or ``expiring`` rule: whether the watched value is past it now.

    ``balance``: free credits below the amount; ``depleted``: free credits at zero or less; ``runway``:
    days left below the threshold (``value`` ``None``: not short); ``expiring``: credits to expire at or
    above the amount, or the percentage of ``plan``.
    """
    if rule.kind == "depleted":
        return {"": value is not None and value <= 0}
    out = {}
    for threshold in rule.thresholds:
        if value is None:
            out[threshold] = False
        elif rule.kind == "expiring":
            line = _expiring_line(threshold, plan)
            out[threshold] = line is not None and value >= line and value > 0
        else:
            out[threshold] = value < Decimal(threshold)
    return out


def dip_crossing(
    rule: AlertRule, threshold: str, dip: int, event: str, value: Decimal | None, facts: Mapping[str, Any]
) -> Crossing:
    """The message of a dip kind's crossing (``event`` :data:`CROSSED`) or recovery."""
    subject, shown = rule.subject, _value_text(rule.kind, value)
    if event == RECOVERED:
        title = f"Credits on {subject!r} recovered"
        back = {
            "balance": f"above {grouped_amount(Decimal(threshold or 0))} free credits",
            "depleted": "above zero",
            "runway": f"to {threshold} days or more of runway",
        }[rule.kind]
        text = f"Account {subject!r} is back {back}: {shown}. Alert rule {rule.name!r} is armed again."
    elif rule.kind == "runway":
        title = f"Account {subject!r} runs dry within {threshold} days"
        text = (
            f"At its recent burn rate, account {subject!r} runs dry in {shown}, before its plan renews"
            f"{_renewal_text(facts)}. Top it up, lower the DAGs' spending, or move the renewal."
        )
    elif rule.kind == "depleted":
        title = f"Account {subject!r} has no free credits"
        text = (
            f"Account {subject!r} has {shown}: runs that reserve on it are refused or wait until credits "
            f"arrive{_renewal_text(facts)}. Top it up or wait for the renewal."
        )
    else:
        title = f"Account {subject!r} is below {grouped_amount(Decimal(threshold))} free credits"
        text = (
            f"Account {subject!r} has {shown} (its balance minus what running DAGs hold)"
            f"{_renewal_text(facts)}. Top it up or slow the DAGs that spend from it."
        )
    return _crossing(rule, threshold, f"dip-{dip}", event, title, text, facts)


def expiring_crossing(
    rule: AlertRule, threshold: str, expiring: Decimal, facts: Mapping[str, Any]
) -> Crossing:
    """The message of an ``expiring`` crossing, keyed by the renewal it is about."""
    renewal = str(facts.get("renews_at") or "")
    return _crossing(
        rule,
        threshold,
        renewal,
        CROSSED,
        f"About {grouped_amount(expiring)} credits on {rule.subject!r} will expire unused",
        f"At its recent pace, account {rule.subject!r} will have about {grouped_amount(expiring)} plan "
        f"credits left when its plan renews{_renewal_text(facts)}, and they reset unspent. Bring planned "
        "work forward, or move to a smaller plan.",
        facts,
    )


def expiring_credits(
    available: Decimal, burn_per_day: Decimal, days_to_renewal: Decimal, carried: Decimal | None = None
) -> Decimal:
    """Credits left at the renewal at the current pace, less what carries over (bonus credits)."""
    with exact_arithmetic():
        left = available - burn_per_day * days_to_renewal - (carried or Decimal(0))
    return max(left, Decimal(0)).quantize(Decimal("0.01")) if left > 0 else Decimal(0)


def budget_facts(state: BudgetState, threshold: str) -> dict[str, Any]:
    """The numbers of a budget alert."""
    b = state.budget
    return {
        "budget": b.name,
        "account": b.account,
        "threshold_percent": threshold,
        "cap": decimal_text(b.cap),
        "spent": decimal_text(state.spent),
        "held": decimal_text(state.held),
        "remaining": decimal_text(state.remaining),
        "period_start": state.period_start.isoformat(),
        "period_end": state.period_end.isoformat(),
    }


# -- parsing --------------------------------------------------------------------------------------------
def _thresholds(kind: str, value: Any, where: str) -> tuple[str, ...]:
    items = (
        [value] if isinstance(value, (str, int, float, Decimal)) and not isinstance(value, bool) else value
    )
    if items is None:
        items = []
    if not isinstance(items, (list, tuple)):
        raise AlertRuleError(f"{where}thresholds must be a list, got {_shown(value)}.")
    if kind == "depleted":
        if items:
            raise AlertRuleError(f"{where}a depleted rule takes no thresholds (it fires at zero).")
        return ()
    if not items:
        raise AlertRuleError(f"{where}a {kind} rule needs at least one threshold ({KINDS[kind][1]}).")
    if len(items) > MAX_THRESHOLDS:
        raise AlertRuleError(f"{where}at most {MAX_THRESHOLDS} thresholds, got {len(items)}.")
    out = []
    for item in items:
        text = str(item).strip() if not isinstance(item, float) else repr(item)
        percent = text.endswith("%")
        if percent and kind != "expiring":
            raise AlertRuleError(f"{where}threshold {text!r}: only an expiring rule takes a percentage.")
        number = text[:-1].strip() if percent else text
        try:
            amount = to_amount(number, "threshold") if not isinstance(item, bool) else None
        except Exception:  # InvalidCostEstimateError: reworded for a rule
            amount = None
        if amount is None or amount <= 0:
            raise AlertRuleError(f"{where}threshold {_shown(item)} is not a positive number.")
        if (percent or KINDS[kind][1] == "percent") and amount > 1000:
            raise AlertRuleError(f"{where}threshold {text!r} is more than 1000%.")
        shown = decimal_text(amount.normalize())
        assert shown is not None
        out.append(f"{shown}%" if percent else shown)
    if len(set(out)) != len(out):
        raise AlertRuleError(f"{where}a threshold is listed twice ({', '.join(out)}).")
    return tuple(sorted(out, key=lambda t: Decimal(t.rstrip("%"))))


def _notifier(value: Any, where: str) -> str:
    if not isinstance(value, str) or not (value in NOTIFIER_ALIASES or _IMPORT_PATH.fullmatch(value)):
        aliases = ", ".join(NOTIFIER_ALIASES)
        raise AlertRuleError(
            f"{where}notifier must be {aliases} or the import path of an Airflow BaseNotifier "
            f"(package.module.Class), got {_shown(value)}."
        )
    return value


def _name(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AlertRuleError(f"{where}{what} must be a non-empty name, got {_shown(value)}.")
    if len(value) > MAX_NAME:
        raise AlertRuleError(f"{where}{what} is longer than {MAX_NAME} characters.")
    return value


def _shown(value: Any) -> str:
    from airflow_credits_provider.errors import truncate

    return truncate(repr(value), 60)


# -- wording --------------------------------------------------------------------------------------------
_PERIOD_WORDS = {"day": "today", "week": "this week", "month": "this month"}


def _crossing(
    rule: AlertRule, threshold: str, period: str, event: str, title: str, text: str, facts: Mapping[str, Any]
) -> Crossing:
    facts = {"rule": rule.name, "kind": rule.kind, "subject": rule.subject, "event": event, **facts}
    return Crossing(rule.name, rule.subject, threshold, period, event, title, text, facts)


def _period(state: BudgetState) -> str:
    return state.period_start.isoformat()


def _percent(part: Decimal, whole: Decimal) -> str:
    """``part`` as a percentage of ``whole``, to a tenth (shown, never compared: rounding is fine)."""
    with localcontext() as ctx:
        ctx.prec = 60
        value = (part * 100 / whole).quantize(Decimal("0.1"))
    return decimal_text(value.normalize()) or "0"


def _when(moment: datetime) -> str:
    from airflow_credits_provider.budgets import renewal_text

    return renewal_text(moment)


def _value_text(kind: str, value: Decimal | None) -> str:
    if value is None:
        return "no forecast"
    if kind == "runway":
        return f"{decimal_text(value.quantize(Decimal('0.1')))} days"
    return f"{grouped_amount(value)} free credits"


def _renewal_text(facts: Mapping[str, Any]) -> str:
    renews = facts.get("renews_at")
    return f" (it renews {renews})" if renews else ""


def _expiring_line(threshold: str, plan: Decimal | None) -> Decimal | None:
    if not threshold.endswith("%"):
        return Decimal(threshold)
    if plan is None or plan <= 0:
        return None  # a percentage of an unknown plan: never judged
    with exact_arithmetic():
        return plan * Decimal(threshold[:-1]) / 100


def thresholds_text(rule: AlertRule) -> str:
    """``50%, 80%, 100% of the cap``, ``below 1,000 credits``, ... for listings."""
    unit = KINDS[rule.kind][1]
    shown: Sequence[str] = rule.thresholds
    if unit == "percent":
        return ", ".join(f"{t}%" for t in shown) + " of the cap"
    if unit == "days":
        return "within " + ", ".join(shown) + " days"
    if rule.kind == "depleted":
        return "at zero"
    if rule.kind == "expiring":
        return ", ".join(t if t.endswith("%") else grouped_amount(Decimal(t)) for t in shown) + " to expire"
    return "below " + ", ".join(grouped_amount(Decimal(t)) for t in shown) + " credits"
