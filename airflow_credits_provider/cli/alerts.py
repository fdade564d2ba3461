"""``airflow-credits alerts ...`` (and ``airflow credits alerts ...``): manage credit alert rules.

Rules live in the reservation database (:mod:`.reservation_db`), beside the budgets they watch. Exit
codes: 0 ok, 1 a database error or a notifier that failed (``alerts test``), 2 bad input (nothing was
written) or an unknown rule.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.cli.groups import JSON_OPTION, Command, CommandGroup, Option
from airflow_credits_provider.cli.output import print_table
from airflow_credits_provider.cli.reservation_db import DB_OPTIONS, reservation_store, run, usage_error

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from airflow_credits_provider.alerts import AlertRule
    from airflow_credits_provider.reservations.alert_claims import Claim

_NAME = Option(("name",), {"help": "the rule's name, e.g. growth-budget"})

COMMANDS = (
    Command(
        "set",
        "create or change an alert rule",
        "alerts_set",
        (
            _NAME,
            Option(
                ("--kind",),
                {
                    "choices": ("budget", "budget_forecast", "balance", "depleted", "runway", "expiring"),
                    "help": "what it watches; kept when changing a rule",
                },
            ),
            Option(("--subject",), {"help": "the budget's name, or the account; kept when changing a rule"}),
            Option(
                ("--threshold",),
                {
                    "action": "append",
                    "dest": "thresholds",
                    "help": "a percent of the cap, credits, days, or N%% of the plan (repeat for several)",
                },
            ),
            Option(("--notifier",), {"help": "smtp, slack_webhook, or a BaseNotifier's import path"}),
            Option(
                ("--notifier-args",),
                {"help": 'the notifier\'s arguments as JSON, e.g. \'{"to": ["team@example.com"]}\''},
            ),
            Option(
                ("--credit-conn-id",),
                {"help": "the credit connection an account rule reads (default: the subject)"},
            ),
            Option(
                ("--no-recovered",),
                {"action": "store_true", "help": "send no message when a dip ends (dip kinds)"},
            ),
            Option(("--description",), {"help": "free text"}),
            *DB_OPTIONS,
        ),
    ),
    Command("list", "list alert rules", "alerts_list", (JSON_OPTION, *DB_OPTIONS)),
    Command("show", "show one rule and its latest alerts", "alerts_show", (_NAME, JSON_OPTION, *DB_OPTIONS)),
    Command("delete", "delete a rule (its alerts' history stays)", "alerts_delete", (_NAME, *DB_OPTIONS)),
    Command(
        "import",
        "create or change the rules of a YAML or JSON file (all or none)",
        "alerts_import",
        (
            Option(("file",), {"help": "the YAML or JSON file (see docs/alerts.md)"}),
            Option(("--dry-run",), {"action": "store_true", "help": "check the file, write nothing"}),
            *DB_OPTIONS,
        ),
    ),
    Command(
        "history",
        "alerts claimed, sent, failed or pending, newest first",
        "alerts_history",
        (
            Option(("--rule",), {"help": "only this rule's"}),
            Option(("--subject",), {"help": "only this budget's or account's"}),
            Option(("--limit",), {"type": int, "default": 50, "help": "how many (default 50)"}),
            JSON_OPTION,
            *DB_OPTIONS,
        ),
    ),
    Command("test", "send a sample alert through a rule's notifier", "alerts_test", (_NAME, *DB_OPTIONS)),
)

GROUP = CommandGroup(
    name="alerts",
    help="manage credit alert rules (budget, balance, runway, expiring credits)",
    description="Manage credit alert rules: warnings before a budget, a balance or a plan's credits run out "
    "or expire unused, sent once each through an Airflow notifier. They live in the reservation database "
    "(--conn-id, or [credits] reservations_conn_id). Exit codes: 0 ok, 1 a database or notifier error, 2 "
    "bad input (nothing was written) or an unknown rule.",
    module=__name__,
    commands=COMMANDS,
    runner=run,
)


# -- the handlers ---------------------------------------------------------------------------------
def alerts_set(args: argparse.Namespace) -> int:
    """``alerts set``: create a rule, or change the fields given."""
    from airflow_credits_provider.alerts import AlertRule
    from airflow_credits_provider.errors import UnknownAlertRuleError
    from airflow_credits_provider.notifications.checks import check_rule

    given: dict[str, Any] = {
        "kind": args.kind,
        "subject": args.subject,
        "thresholds": args.thresholds,
        "notifier": args.notifier,
        "notifier_args": _json_arg(args.notifier_args),
        "credit_conn_id": args.credit_conn_id,
        "recovered": False if args.no_recovered else None,
        "description": args.description,
    }
    store = reservation_store(args)
    try:
        old: dict[str, Any] = store.alert_rules.get(args.name).to_dict()
    except UnknownAlertRuleError:
        old = {}
    fields = {**old, **{k: v for k, v in given.items() if v is not None}}
    fields.pop("name", None)
    for needed in ("kind", "subject", "notifier"):
        if needed not in fields:
            return usage_error(f"a new rule needs --{needed}")
    rule = AlertRule.parse(name=args.name, **fields)
    check_rule(store, rule)  # its budget or account exists, its notifier takes its arguments
    store.alert_rules.set([rule])
    print(f"{'Changed' if old else 'Created'} alert rule {rule.name!r}:", file=args.out)
    _print_rule(args, rule)
    return 0


def alerts_list(args: argparse.Namespace) -> int:
    """``alerts list``: every rule."""
    from airflow_credits_provider.alerts import thresholds_text

    rules = reservation_store(args).alert_rules.all()
    if args.json:
        print(json.dumps([r.to_dict() for r in rules], indent=2), file=args.out)
        return 0
    if not rules:
        print(
            "No alert rules defined. Create one with `airflow-credits alerts set NAME --kind budget "
            "--subject BUDGET --threshold 80 --notifier smtp --notifier-args '{\"to\": [...]}'`.",
            file=args.out,
        )
        return 0
    rows = [(r.name, r.kind, r.subject, thresholds_text(r), r.notifier) for r in rules]
    print_table(args.out, ("name", "kind", "subject", "when", "notifier"), rows)
    return 0


def alerts_show(args: argparse.Namespace) -> int:
    """``alerts show``: one rule and its latest alerts."""
    store = reservation_store(args)
    rule = store.alert_rules.get(args.name)
    claims = store.alert_claims.history(rule=rule.name, limit=20)
    if args.json:
        data = {**rule.to_dict(), "alerts": [c.to_dict() for c in claims]}
        print(json.dumps(data, indent=2), file=args.out)
        return 0
    _print_rule(args, rule)
    print("  latest alerts:" if claims else "  latest alerts: none yet", file=args.out)
    if claims:
        _print_claims(args, claims, indent="    ")
    return 0


def alerts_delete(args: argparse.Namespace) -> int:
    """``alerts delete``: remove a rule; its alerts' history stays."""
    store = reservation_store(args)
    store.alert_rules.get(args.name)  # an unknown name: the error lists the defined ones
    store.alert_rules.delete(args.name)
    print(f"Deleted alert rule {args.name!r} (its alerts' history stays).", file=args.out)
    return 0


def alerts_import(args: argparse.Namespace) -> int:
    """``alerts import``: create or change every rule of a file, in one transaction, or none."""
    from pathlib import Path

    from airflow_credits_provider.errors import AlertRuleError, AlertRuleFileError
    from airflow_credits_provider.notifications.checks import check_rule
    from airflow_credits_provider.reservations.alert_files import load_rules

    entries = load_rules(Path(args.file))  # every entry parsed before anything is checked or written
    store = reservation_store(args)
    for line, rule in entries:
        try:
            check_rule(store, rule)
        except AlertRuleError as exc:
            raise AlertRuleFileError(f"{args.file} line {line}: {exc}") from None
    rules = [rule for _, rule in entries]
    if args.dry_run:
        print(f"{args.file}: {_count(len(rules))}, all valid (dry run: nothing written).", file=args.out)
        return 0
    known = {r.name: r for r in store.alert_rules.all()}
    store.alert_rules.set(rules)
    changed = [r.name for r in rules if r.name in known and known[r.name] != r]
    created = [r.name for r in rules if r.name not in known]
    same = len(rules) - len(changed) - len(created)
    print(
        f"Imported {_count(len(rules))} from {args.file}: {len(created)} created, {len(changed)} changed, "
        f"{same} unchanged."
        + (f" Created: {', '.join(created)}." if created else "")
        + (f" Changed: {', '.join(changed)}." if changed else ""),
        file=args.out,
    )
    return 0


def alerts_history(args: argparse.Namespace) -> int:
    """``alerts history``: claimed alerts and how their delivery went."""
    if args.limit < 1:
        return usage_error("--limit must be 1 or more")
    claims = reservation_store(args).alert_claims.history(args.rule, args.subject, args.limit)
    if args.json:
        print(json.dumps([c.to_dict() for c in claims], indent=2), file=args.out)
        return 0
    if not claims:
        print("No alerts yet.", file=args.out)
        return 0
    _print_claims(args, claims)
    return 0


def alerts_test(args: argparse.Namespace) -> int:
    """``alerts test``: a sample through the rule's notifier (nothing is claimed or recorded)."""
    import sys

    from airflow_credits_provider.notifications.delivery import send_sample

    store = reservation_store(args)
    store.alert_rules.get(args.name)
    try:
        title = send_sample(store, args.name)
    except Exception as exc:  # the notifier's own error, whatever its type: one line
        from airflow_credits_provider.errors import truncate

        print(
            f"error: the notifier failed ({type(exc).__name__}: {truncate(str(exc), 300)}).", file=sys.stderr
        )
        return 1
    print(f"Sent {title!r}.", file=args.out)
    return 0


# -- helpers ----------------------------------------------------------------------------------------
def _print_rule(args: argparse.Namespace, rule: AlertRule) -> None:
    from airflow_credits_provider.alerts import thresholds_text

    lines = [
        ("name", rule.name),
        ("kind", rule.kind),
        (rule.subject_kind, rule.subject),
        ("fires", thresholds_text(rule)),
        ("notifier", rule.notifier),
        ("arguments", ", ".join(sorted(rule.notifier_args)) or "-"),
    ]
    if rule.credit_conn_id:
        lines.append(("reads", rule.credit_conn_id))
    if rule.kind in ("balance", "depleted", "runway"):
        lines.append(("recoveries", "sent" if rule.recovered else "not sent"))
    if rule.description:
        lines.append(("description", rule.description))
    for label, value in lines:
        print(f"  {label + ':':<13}{value}", file=args.out)


def _print_claims(args: argparse.Namespace, claims: Sequence[Claim], indent: str = "") -> None:
    rows = [
        (
            f"{c.claimed_at:%Y-%m-%d %H:%M}" if c.claimed_at else "-",
            c.status + (_retry(c) if c.status == "failed" else ""),
            c.rule,
            c.title,
        )
        for c in claims
    ]
    print_table(args.out, ("claimed (UTC)", "status", "rule", "alert"), rows, indent)
    for c in claims:
        if c.status == "failed" and c.last_error:
            print(f"{indent}{c.rule}: last error: {c.last_error}", file=args.out)


def _retry(claim: Claim) -> str:
    """`` (2 tries, next 2026-12-05 04:13 UTC)`` for a failed claim."""
    tries = "1 try" if claim.attempts == 1 else f"{claim.attempts} tries"
    when = f", next {claim.next_attempt_at:%Y-%m-%d %H:%M} UTC" if claim.next_attempt_at else ""
    return f" ({tries}{when})"


def _json_arg(text: str | None) -> Any:
    from airflow_credits_provider.errors import AlertRuleError

    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AlertRuleError(f"--notifier-args is not valid JSON ({exc.msg}).") from None


def _count(n: int) -> str:
    return f"{n} rule" if n == 1 else f"{n} rules"
