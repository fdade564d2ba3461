"""``airflow-credits budgets ...`` (and ``airflow credits budgets ...``): manage credit budgets like pools.

Budgets live in the reservation database: the SQL connection given by ``--conn-id`` or, without it,
``[credits] reservations_conn_id`` (``AIRFLOW__CREDITS__RESERVATIONS_CONN_ID``), the one the Credits
pages read. Exit codes: 0 ok, 1 a database error, 2 bad input (nothing was written) or an unknown
budget.

The arguments are declared once (:data:`COMMANDS`) and given to both argparse (``airflow-credits``)
and Airflow's own CLI (``airflow credits``, on Airflow versions whose CLI takes provider commands).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence

    from airflow_credits_provider.reservations import BudgetState, ReservationStore


@dataclass(frozen=True)
class Option:
    """One command-line argument: its flags and argparse keywords."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Command:
    """One ``budgets`` sub-command."""

    name: str
    help: str
    handler: str  # the name of its function in this module
    options: tuple[Option, ...]


_DB = (
    Option(
        ("--conn-id",),
        {"help": "the reservation database's SQL connection (default: [credits] reservations_conn_id)"},
    ),
    Option(
        ("--table",),
        {
            "help": "the reservations table (default: [credits] reservations_table or "
            "credit_reservations); budgets live in <table>_budgets"
        },
    ),
    Option(("--schema",), {"help": "the schema of the reservation tables"}),
    Option(("--usage-table",), {"help": "the usage table (default: [credits] usage_table or credit_usage)"}),
)
_JSON = Option(("--json",), {"action": "store_true", "help": "print JSON instead of text"})
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
            *_DB,
        ),
    ),
    Command("list", "list budgets with their spend this period", "budgets_list", (_JSON, *_DB)),
    Command("show", "show one budget and its spend this period", "budgets_show", (_NAME, _JSON, *_DB)),
    Command("delete", "delete a budget (its usage history stays)", "budgets_delete", (_NAME, *_DB)),
    Command(
        "usage",
        "a budget's spend per period, and per DAG this period",
        "budgets_usage",
        (
            _NAME,
            Option(("--periods",), {"type": int, "default": 3, "help": "periods to show (default 3)"}),
            _JSON,
            *_DB,
        ),
    ),
    Command(
        "import",
        "create or change the budgets of a YAML or JSON file (all or none)",
        "budgets_import",
        (
            Option(("file",), {"help": "the YAML or JSON file (see docs/budgets.md)"}),
            Option(("--dry-run",), {"action": "store_true", "help": "check the file, write nothing"}),
            *_DB,
        ),
    ),
)


def add_budgets_parser(commands: Any) -> None:
    """Add ``budgets`` and its sub-commands to an argparse sub-parsers object."""
    budgets = commands.add_parser(
        "budgets",
        help="manage credit budgets (spend caps per period)",
        description="Manage credit budgets (spend caps per team and period), like airflow pools; "
        "they live in the reservation database (--conn-id, or [credits] reservations_conn_id). "
        "Exit codes: 0 ok, 1 a database error, 2 bad input (nothing was written) or an unknown budget.",
    )
    subs = budgets.add_subparsers(dest="budgets_command", required=True)
    for command in COMMANDS:
        parser = subs.add_parser(command.name, help=command.help, description=command.help)
        for option in command.options:
            parser.add_argument(*option.flags, **option.kwargs)
        parser.set_defaults(func=globals()[command.handler])


def run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a handler; budget errors exit 2, database errors 1, each with one line on standard error."""
    import contextlib

    from airflow_credits_provider.errors import CreditConnectionConfigError, CreditProviderError

    if not hasattr(args, "out"):
        args.out = sys.stdout
    try:
        # Airflow may log to standard output (statements, settings): only the results go there.
        with contextlib.redirect_stdout(sys.stderr):
            return handler(args)
    except CreditConnectionConfigError as exc:  # budgets, connections, names: bad input
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CreditProviderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # each database driver has its own errors: one line, no traceback
        from airflow_credits_provider.errors import truncate

        print(
            f"error: the reservation database failed ({type(exc).__name__}: {truncate(str(exc), 300)}). "
            "Check the connection given by --conn-id or [credits] reservations_conn_id.",
            file=sys.stderr,
        )
        return 1


# -- the handlers ---------------------------------------------------------------------------------
def budgets_set(args: argparse.Namespace) -> int:
    """``budgets set``: create a budget, or change the fields given."""
    from airflow_credits_provider.errors import UnknownBudgetError
    from airflow_credits_provider.reservations import Budget

    _check_given(args)  # bad input fails before the database is touched
    store = _store(args)
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
            return _usage_error(f"a new budget needs --{needed}")
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
    store = _store(args)
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
    from airflow_credits_provider.parsing import grouped_amount
    from airflow_credits_provider.reservations.budgets import renewal_text

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
    _print_table(args, header, rows)
    return 0


def budgets_show(args: argparse.Namespace) -> int:
    """``budgets show``: one budget and its spend this period."""
    state = _store(args).budget_state(args.name)
    if args.json:
        print(json.dumps(state.to_dict(), indent=2), file=args.out)
    else:
        _print_state(args, state)
    return 0


def budgets_delete(args: argparse.Namespace) -> int:
    """``budgets delete``: remove a budget; tasks naming it then fail at their preflight."""
    store = _store(args)
    store.budgets.get(args.name)  # an unknown name: the error lists the defined ones
    store.budgets.delete(args.name)
    print(f"Deleted budget {args.name!r} (its usage rows stay in the usage table).", file=args.out)
    return 0


def budgets_usage(args: argparse.Namespace) -> int:
    """``budgets usage``: spend per period for the last ``--periods`` periods, and per DAG this one."""
    from airflow_credits_provider.reservations.usage_report import budget_usage

    if args.periods < 1:
        return _usage_error("--periods must be 1 or more")
    store = _store(args)
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
    _print_table(
        args,
        ("period", "spent", "runs", "unmeasured"),
        [
            (p["period_start"][:10], grouped_amount(_dec(p["spent"])), str(p["runs"]), str(p["unmeasured"]))
            for p in report["periods"]
        ],
    )
    if report["dags"]:
        print("This period, per DAG:", file=args.out)
        _print_table(
            args,
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
    store = _store(args)
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
def _store(args: argparse.Namespace) -> ReservationStore:
    """The reservation store of ``--conn-id`` (or ``[credits] reservations_conn_id``)."""
    from airflow_credits_provider.cli import _load_connection
    from airflow_credits_provider.errors import CreditConnectionConfigError
    from airflow_credits_provider.reservations import ReservationStore
    from airflow_credits_provider.sql.connections import sql_hook_for

    settings = _settings()
    conn_id = args.conn_id or settings.get("reservations_conn_id")
    if not conn_id:
        raise CreditConnectionConfigError(
            "No reservation database: pass --conn-id, or set [credits] reservations_conn_id "
            "(AIRFLOW__CREDITS__RESERVATIONS_CONN_ID) to the SQL connection the preflights' "
            "reservation_conn_id names."
        )
    _load_connection(conn_id)
    hook = sql_hook_for(conn_id)
    return ReservationStore(
        hook,
        table=args.table or settings.get("reservations_table") or "credit_reservations",
        schema=args.schema or settings.get("reservations_schema") or None,
        usage_table=args.usage_table or settings.get("usage_table") or "credit_usage",
    )


def _settings() -> dict[str, str]:
    """``[credits]`` options that name the reservation tables (empty when Airflow has none set)."""
    from airflow_credits_provider.compat import conf

    names = ("reservations_conn_id", "reservations_table", "reservations_schema", "usage_table")
    return {n: str(conf.get("credits", n, fallback="") or "") for n in names}


def _print_state(args: argparse.Namespace, state: BudgetState) -> None:
    from airflow_credits_provider.parsing import grouped_amount
    from airflow_credits_provider.reservations.budgets import renewal_text

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


def _print_table(args: argparse.Namespace, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print(
            "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=args.out
        )


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


def _usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _dec(text: str) -> Any:
    from decimal import Decimal

    return Decimal(text)
