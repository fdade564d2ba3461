"""``airflow-credits budgets ...`` (and ``airflow credits budgets ...``): manage credit budgets like pools.

Budgets live in the reservation database (:mod:`.reservation_db`). Exit codes: 0 ok, 1 a database error,
2 bad input (nothing was written) or an unknown budget. The sub-commands are declared once
(:data:`GROUP`) and given to both argparse (``airflow-credits``) and Airflow's own CLI (``airflow
credits``, on Airflow versions whose CLI takes provider commands).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.cli.groups import JSON_OPTION, Command, CommandGroup, Option
from airflow_credits_provider.cli.output import print_table
from airflow_credits_provider.cli.reservation_db import DB_OPTIONS, reservation_store, run, usage_error

if TYPE_CHECKING:
    import argparse

    from airflow_credits_provider.reservations import BudgetState


_NAME = Option(("name",), {"help": "the budget's name, e.g. growth"})

COMMANDS = (
    Command(
        "set",
        "create or change a budget",
        "budgets_set",
        (
            _NAME,
            Option(
                ("--account",),
                {
                    "help": "the account it draws on (the credit connection id, or the "
                    "account= several connections share); kept when changing a budget"
                },
            ),
            Option(("--cap",), {"help": "credits it may spend per period; kept when changing a budget"}),
            Option(("--period",), {"choices": ("day", "week", "month"), "help": "default month"}),
            Option(("--timezone",), {"help": "IANA time zone of the period boundaries (default UTC)"}),
            Option(("--description",), {"help": "free text"}),
            *DB_OPTIONS,
        ),
    ),
    Command("list", "list budgets with their spend this period", "budgets_list", (JSON_OPTION, *DB_OPTIONS)),
    Command(
        "show", "show one budget and its spend this period", "budgets_show", (_NAME, JSON_OPTION, *DB_OPTIONS)
    ),
    Command("delete", "delete a budget (its usage history stays)", "budgets_delete", (_NAME, *DB_OPTIONS)),
    Command(
        "usage",
        "a budget's spend per period, and per DAG this period",
        "budgets_usage",
        (
            _NAME,
            Option(("--periods",), {"type": int, "default": 3, "help": "periods to show (default 3)"}),
            JSON_OPTION,
            *DB_OPTIONS,
        ),
    ),
    Command(
        "import",
        "create or change the budgets of a YAML or JSON file (all or none)",
        "budgets_import",
        (
            Option(("file",), {"help": "the YAML or JSON file (see docs/budgets.md)"}),
            Option(("--dry-run",), {"action": "store_true", "help": "check the file, write nothing"}),
            *DB_OPTIONS,
        ),
    ),
)


GROUP = CommandGroup(
    name="budgets",
    help="manage credit budgets (spend caps per period)",
    description="Manage credit budgets (spend caps per team and period), like airflow pools; "
    "they live in the reservation database (--conn-id, or [credits] reservations_conn_id). "
    "Exit codes: 0 ok, 1 a database error, 2 bad input (nothing was written) or an unknown budget.",
    module=__name__,
    commands=COMMANDS,
    runner=run,
)


# -- the handlers ---------------------------------------------------------------------------------
def budgets_set(args: argparse.Namespace) -> int:
    """``budgets set``: create a budget, or change the fields given."""
    from airflow_credits_provider.errors import UnknownBudgetError
    from airflow_credits_provider.reservations import Budget

    _check_given(args)  # bad input fails before the database is touched
    store = reservation_store(args)
    try:
        old: dict[str, Any] = store.budgets.get(args.name).to_dict()
    except UnknownBudgetError:
        old = {"period": "month", "timezone": "UTC", "description": ""}
    given = {
        "account": args.account,
        "cap": args.cap,
        "period": args.period,
        "timezone": args.timezone,
        "description": args.description,
    }
    fields = {**old, **{k: v for k, v in given.items() if v is not None}}
    fields.pop("name", None)
    for needed in ("account", "cap"):
        if needed not in fields:
            return usage_error(f"a new budget needs --{needed}")
    budget = Budget.parse(name=args.name, **fields)
    store.budgets.set([budget])
    print(f"{'Changed' if 'name' in old else 'Created'} budget {budget.name!r}:", file=args.out)
    if "name" in old and old["account"] != budget.account:
        print(
            f"  note: it now draws on account {budget.account!r}, not {old['account']!r}: tasks naming it "
            f"must reserve on {budget.account!r}; its spend on {old['account']!r} this period still counts.",
            file=args.out,
        )
    _print_state(args, store.budget_state(budget.name))
    return 0


def budgets_list(args: argparse.Namespace) -> int:
    """``budgets list``: every budget with its spend this period."""
    store = reservation_store(args)
    states = [store.budget_state(b.name) for b in store.budgets.all()]
    if args.json:
        print(json.dumps([s.to_dict() for s in states], indent=2), file=args.out)
        return 0
    if not states:
        print(
            "No budgets defined. Create one with `airflow-credits budgets set NAME --account A --cap N`.",
            file=args.out,
        )
        return 0
    from airflow_credits_provider.budgets import renewal_text
    from airflow_credits_provider.parsing import grouped_amount

    header = ("name", "account", "period", "cap", "spent", "held", "remaining", "renews")
    rows = [
        (
            s.budget.name,
            s.budget.account,
            s.budget.period,
            grouped_amount(s.budget.cap),
            grouped_amount(s.spent),
            grouped_amount(s.held),
            grouped_amount(s.remaining),
            renewal_text(s.period_end),
        )
        for s in states
    ]
    print_table(args.out, header, rows)
    return 0


def budgets_show(args: argparse.Namespace) -> int:
    """``budgets show``: one budget and its spend this period."""
    state = reservation_store(args).budget_state(args.name)
    if args.json:
        print(json.dumps(state.to_dict(), indent=2), file=args.out)
    else:
        _print_state(args, state)
    return 0


def budgets_delete(args: argparse.Namespace) -> int:
    """``budgets delete``: remove a budget; tasks naming it then fail at their preflight."""
    store = reservation_store(args)
    store.budgets.get(args.name)  # an unknown name: the error lists the defined ones
    store.budgets.delete(args.name)
    print(f"Deleted budget {args.name!r} (its usage rows stay in the usage table).", file=args.out)
    return 0


def budgets_usage(args: argparse.Namespace) -> int:
    """``budgets usage``: spend per period for the last ``--periods`` periods, and per DAG this one."""
    from airflow_credits_provider.reservations.usage_report import budget_usage

    if args.periods < 1:
        return usage_error("--periods must be 1 or more")
    store = reservation_store(args)
    report = budget_usage(store, args.name, args.periods)
    if args.json:
        print(json.dumps(report, indent=2), file=args.out)
        return 0
    from airflow_credits_provider.parsing import grouped_amount

    state = report["budget"]
    print(
        f"Budget {state['name']!r} on account {state['account']!r}: "
        f"cap {grouped_amount(_dec(state['cap']))} per "
        f"{state['period']} ({state['timezone']})",
        file=args.out,
    )
    print_table(
        args.out,
        ("period", "spent", "runs", "unmeasured"),
        [
            (p["period_start"][:10], grouped_amount(_dec(p["spent"])), str(p["runs"]), str(p["unmeasured"]))
            for p in report["periods"]
        ],
    )
    if report["dags"]:
        print("This period, per DAG:", file=args.out)
        print_table(
            args.out,
            ("dag_id", "spent", "runs"),
            [(d["dag_id"], grouped_amount(_dec(d["spent"])), str(d["runs"])) for d in report["dags"]],
        )
    return 0


def budgets_import(args: argparse.Namespace) -> int:
    """``budgets import``: create or change every budget of a file, in one transaction, or none."""
    from pathlib import Path

    from airflow_credits_provider.reservations.budget_files import load_budgets

    budgets = load_budgets(Path(args.file))  # every entry checked before anything is written
    if args.dry_run:
        print(f"{args.file}: {_count(len(budgets))}, all valid (dry run: nothing written).", file=args.out)
        return 0
    store = reservation_store(args)
    known = {b.name: b for b in store.budgets.all()}
    store.budgets.set(budgets)
    changed = [b.name for b in budgets if b.name in known and known[b.name] != b]
    created = [b.name for b in budgets if b.name not in known]
    same = len(budgets) - len(changed) - len(created)
    print(
        f"Imported {_count(len(budgets))} from {args.file}: {len(created)} created, {len(changed)} changed, "
        f"{same} unchanged."
        + (f" Created: {', '.join(created)}." if created else "")
        + (f" Changed: {', '.join(changed)}." if changed else ""),
        file=args.out,
    )
    return 0


# -- helpers ----------------------------------------------------------------------------------------
def _print_state(args: argparse.Namespace, state: BudgetState) -> None:
    from airflow_credits_provider.budgets import renewal_text
    from airflow_credits_provider.parsing import grouped_amount

    b = state.budget
    lines = [
        ("name", b.name),
        ("account", b.account),
        ("cap", f"{grouped_amount(b.cap)} credits per {b.period}"),
        ("time zone", b.timezone),
        ("this period", f"{renewal_text(state.period_start)} to {renewal_text(state.period_end)}"),
        ("spent", grouped_amount(state.spent)),
        ("held", f"{grouped_amount(state.held)} by {state.holders} active reservation(s)"),
        ("remaining", grouped_amount(state.remaining)),
    ]
    if b.description:
        lines.append(("description", b.description))
    for label, value in lines:
        print(f"  {label + ':':<13}{value}", file=args.out)


def _check_given(args: argparse.Namespace) -> None:
    """Check the fields ``budgets set`` was given, before reading or creating anything."""
    from airflow_credits_provider.reservations import Budget

    Budget.parse(
        name=args.name,
        account=args.account or "-",
        cap="0" if args.cap is None else args.cap,
        period=args.period or "month",
        timezone=args.timezone or "UTC",
    )


def _count(n: int) -> str:
    return f"{n} budget" if n == 1 else f"{n} budgets"


def _dec(text: str) -> Any:
    from decimal import Decimal

    return Decimal(text)
