"""``airflow-credits balance`` and ``airflow-credits runway``: an account's balance now, and its runway."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.cli.arguments import not_negative, positive
from airflow_credits_provider.cli.connections import credits_setting
from airflow_credits_provider.hooks.connections import load_connection

if TYPE_CHECKING:
    import argparse

    from airflow_credits_provider.models import CreditBalance


def add_parsers(commands: Any) -> None:
    """Add ``balance`` and ``runway`` to an argparse sub-parsers object."""
    from airflow_credits_provider.vendors import registered_vendors

    types = ", ".join(registered_vendors())
    balance = commands.add_parser(
        "balance",
        help="print the normalised balance of a credit connection",
        description=f"Print the normalised balance of a credit connection (types: {types}). Exit codes: "
        "0 ok, 1 the vendor call failed, 2 the connection is missing or misconfigured.",
    )
    balance.add_argument("conn_id", help="Airflow connection id, e.g. leadmagic_default")
    balance.add_argument("--json", action="store_true", help="print JSON instead of text")
    balance.add_argument("--raw", action="store_true", help="with --json, include the vendor's payload")
    balance.set_defaults(func=_balance)

    runway = commands.add_parser(
        "runway",
        help="forecast when an account runs dry, from its landed balance snapshots",
        description="Print an account's balance, burn per day, forecast date and recent history from the "
        "balance snapshots CreditBalanceToSqlOperator landed. Exit codes: 0 ok, 2 no connection, table or "
        "history to forecast from.",
    )
    runway.add_argument(
        "account", help="the account label of the snapshots (usually the credit connection id)"
    )
    runway.add_argument(
        "--sql-conn-id",
        help="the SQL connection holding the snapshots (default: [credits] warehouse_conn_id)",
    )
    runway.add_argument(
        "--table", help="the snapshots table (default: [credits] snapshots_table or credit_balance_snapshots)"
    )
    runway.add_argument("--schema", help="its schema (default: [credits] warehouse_schema)")
    runway.add_argument("--reserve", default="0", help="forecast reaching this many credits instead of zero")
    runway.add_argument(
        "--window-days", type=positive, default=14, help="days of history to use (default 14)"
    )
    runway.add_argument(
        "--min-history-hours",
        type=not_negative,
        default=1,
        help="the shortest span of history to forecast from (default 1)",
    )
    runway.add_argument(
        "--json", action="store_true", help="print JSON instead of text: CreditRunwayOperator's numbers"
    )
    runway.set_defaults(func=_runway)


def _format_balance(conn_id: str, balance: CreditBalance) -> str:
    lines = [f"{conn_id} ({balance.vendor}): {balance.available.normalize():f} credits available"]
    for label, value in (
        ("total", balance.total),
        ("monthly", balance.monthly),
        ("bonus", balance.bonus),
        ("used", balance.used),
        ("locked", balance.locked),
    ):
        if value is not None:
            lines.append(f"  {label + ':':<15}{value.normalize():f}")
    if balance.locked_reason:
        lines.append(f"  {'locked reason:':<15}{balance.locked_reason}")
    if balance.plan:
        lines.append(f"  {'plan:':<15}{balance.plan}")
    if balance.next_reset_at:
        lines.append(f"  {'next reset:':<15}{balance.next_reset_at.isoformat()}")
    for price in balance.unit_prices.values():
        state = "available" if price.available else f"unavailable: {price.upgrade_required}"
        lines.append(f"  {'price ' + price.name + ':':<15}{price.credits.normalize():f} credits ({state})")
    lines.append(f"  {'fetched at:':<15}{balance.fetched_at.isoformat()}")
    return "\n".join(lines)


def _balance(args: argparse.Namespace) -> int:
    from airflow_credits_provider.errors import CreditConnectionConfigError, CreditProviderError
    from airflow_credits_provider.hooks.resolve import get_credit_hook

    try:
        load_connection(args.conn_id)
        with get_credit_hook(args.conn_id) as hook:
            balance = hook.get_balance()
    except CreditConnectionConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CreditProviderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        data = balance.to_dict(include_raw=args.raw)
        print(json.dumps({"conn_id": args.conn_id, **data}, indent=2, default=str), file=args.out)
    else:
        print(_format_balance(args.conn_id, balance), file=args.out)
    return 0


def _runway(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from airflow_credits_provider.errors import (
        CreditConnectionConfigError,
        CreditProviderError,
        NotEnoughHistoryError,
    )
    from airflow_credits_provider.operators.runway import read_snapshots
    from airflow_credits_provider.parsing import to_amount
    from airflow_credits_provider.runway import daily_chart, forecast

    window = timedelta(days=args.window_days)
    try:
        reserve = to_amount(args.reserve, "--reserve")
        sql_conn_id = args.sql_conn_id or credits_setting("warehouse_conn_id")
        if not sql_conn_id:
            raise CreditConnectionConfigError(
                "No warehouse to read the balance snapshots from: pass --sql-conn-id, or set [credits] "
                "warehouse_conn_id (AIRFLOW__CREDITS__WAREHOUSE_CONN_ID), the connection "
                "CreditBalanceToSqlOperator lands into."
            )
        load_connection(sql_conn_id)
        snapshots = read_snapshots(
            sql_conn_id,
            args.account,
            table=args.table or credits_setting("snapshots_table") or "credit_balance_snapshots",
            schema=args.schema or credits_setting("warehouse_schema") or None,
            window=window,
            log_sql=False,  # common-sql logs every statement at INFO: not for this command's reader
        )
        runway = forecast(
            snapshots,
            reserve=reserve,
            window=window,
            min_history=timedelta(hours=args.min_history_hours),
            setting_names={"window": "--window-days", "min_history": "--min-history-hours"},
        )
    except NotEnoughHistoryError as exc:
        if args.json:  # what the operator returns in this case
            no_forecast = {"account": args.account, "forecast": False, "snapshots": exc.snapshots}
            print(json.dumps(no_forecast, indent=2), file=args.out)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CreditProviderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(
            json.dumps({"account": args.account, "forecast": True, **runway.to_dict()}, indent=2),
            file=args.out,
        )
        return 0
    days = "never (nothing spent)" if runway.days_left is None else f"{runway.days_left:.1f}"
    when = "-" if runway.runs_out_at is None else f"{runway.runs_out_at:%Y-%m-%d %H:%M} UTC"
    history_days = runway.history.total_seconds() / 86400
    lines = [
        f"{args.account}: {runway.describe()}",
        f"  {'balance:':<16}{runway.balance.normalize():f} (at {runway.at:%Y-%m-%d %H:%M} UTC)",
        f"  {'burn per day:':<16}{runway.burn_per_day:.2f}",
        f"  {'days left:':<16}{days}" + (f" (to the reserve of {args.reserve})" if runway.reserve else ""),
        f"  {'runs out:':<16}{when}",
        *([f"  {'renews:':<16}{runway.describe_renewal()}"] if runway.renews_at else []),
        f"  {'history used:':<16}{runway.snapshots} snapshots, {history_days:.1f} days, "
        f"{runway.refills} refill(s) left out",
        "",
        *daily_chart(snapshots, runway=runway),
    ]
    print("\n".join(lines), file=args.out)
    return 0
