"""Sending claimed alerts, each exactly once: lease it, send it, mark it sent (or failed, and retried).

A claim is leased (for :data:`~airflow_credits_provider.reservations.alert_claims.LEASE_SECONDS`)
before its notifier is called, so two deliverers (a reserving task and the scheduled checker, two
checkers) never send the same one; it is marked sent right after. A notifier that fails leaves it
``failed`` with the error and the time of its next attempt; it stays until sent. Only a process killed
between a notifier's success and the mark can send one twice (after the lease), as with any
notification that has no idempotency key on the receiving side.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import CreditProviderError, truncate

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_credits_provider.alerts import Crossing
    from airflow_credits_provider.reservations import ReservationStore
    from airflow_credits_provider.reservations.alert_claims import Claim

log = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    """What one delivery pass did: the claims sent, and those that failed (with their errors)."""

    sent: list[Claim] = field(default_factory=list)
    failed: list[tuple[Claim, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (XCom)."""
        return {
            "sent": [c.to_dict() for c in self.sent],
            "failed": [{**c.to_dict(), "error": e} for c, e in self.failed],
        }


def deliver(
    store: ReservationStore, crossings: Sequence[Crossing] | None = None, *, limit: int = 200
) -> DeliveryReport:
    """Send the claimed alerts that are due: ``crossings`` only (just claimed), or every one.

    Never raises for a notifier's failure: it is recorded on the claim (and logged), which stays due.
    """
    keys = None if crossings is None else [c.key for c in crossings]
    report = DeliveryReport()
    if keys == []:
        return report
    due = store.alert_claims.due(keys, limit=limit)
    rules = {r.name: r for r in store.alert_rules.all()} if due else {}
    token = uuid.uuid4().hex
    for claim in due:
        if not store.alert_claims.lease(claim, token):
            continue  # another deliverer has it, or it was sent meanwhile
        rule = rules.get(claim.rule)
        try:
            if rule is None:
                raise CreditProviderError(
                    f"alert rule {claim.rule!r} was deleted; define it again to send this alert"
                )
            _send(rule, claim)
        except Exception as exc:  # any notifier's error: recorded, retried later, never lost
            error = f"{type(exc).__name__}: {truncate(str(exc), 300)}"
            retry_at = store.alert_claims.mark_failed(claim, token, error)
            log.warning(
                "Credit alert %r of rule %r on %r could not be sent (%s); it stays claimed (failed: "
                "`airflow-credits alerts history`) and is tried again after %s UTC.",
                claim.title,
                claim.rule,
                claim.subject,
                error,
                f"{retry_at:%Y-%m-%d %H:%M:%S}",
            )
            report.failed.append((claim, error))
            continue
        store.alert_claims.mark_sent(claim, token)
        log.info("Sent credit alert %r (rule %r, %s).", claim.title, claim.rule, claim.subject)
        report.sent.append(claim)
    return report


def deliver_claimed(store: ReservationStore, crossings: Sequence[Crossing], task_log: Any) -> None:
    """Send the alerts a reservation or a release just claimed, right after its commit.

    Never fails the task: a notifier's failure is recorded on the claim, and a database error leaves the
    claims pending; either way ``CreditAlertsOperator`` sends them on its next run.
    """
    if not crossings:
        return
    try:
        deliver(store, crossings)
    except Exception as exc:  # the run's own work matters more than its alert
        task_log.warning(
            "Could not send %d credit alert(s) now (%s: %s); they stay claimed and CreditAlertsOperator "
            "sends them on its next run.",
            len(crossings),
            type(exc).__name__,
            truncate(str(exc), 200),
        )


def send_sample(store: ReservationStore, name: str) -> str:
    """``alerts test NAME``: send a sample alert through the rule's notifier; return its title."""
    from airflow_credits_provider.notifications.notifiers import alert_context, send_alert

    rule = store.alert_rules.get(name)
    title = f"Test of credit alert rule {rule.name!r}"
    alert = {
        "rule": rule.name,
        "kind": rule.kind,
        "subject": rule.subject,
        "event": "test",
        "title": title,
        "text": f"This is a test of alert rule {rule.name!r} ({rule.kind} on {rule.subject!r}): when it "
        "fires, its message arrives here.",
        "facts": {},
    }
    send_alert(rule, alert_context(alert, credits_link(rule.subject_kind, rule.balance_conn_id)))
    return title


def _send(rule: Any, claim: Claim) -> None:
    from airflow_credits_provider.notifications.notifiers import alert_context, send_alert

    alert = {
        "rule": claim.rule,
        "kind": claim.kind,
        "subject": claim.subject,
        "threshold": claim.threshold,
        "period": claim.period,
        "event": claim.event,
        "title": claim.title,
        "text": claim.message,
        "facts": dict(claim.facts),
    }
    send_alert(rule, alert_context(alert, credits_link(rule.subject_kind, rule.balance_conn_id)))


def credits_link(subject_kind: str, conn_id: str) -> str | None:
    """The Credits page of the account (or the overview, for a budget), from ``[api] base_url``."""
    from urllib.parse import quote

    from airflow_credits_provider.compat import conf

    base = str(conf.get("api", "base_url", fallback="") or "").rstrip("/")
    if not base:
        return None
    if subject_kind == "budget":
        return f"{base}/credits/"
    return f"{base}/credits/accounts/{quote(conn_id, safe='')}"
