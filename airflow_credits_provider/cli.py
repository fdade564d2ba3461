"""``airflow-credits``: look at balances and run the sandbox from a shell.

- ``airflow-credits balance CONN_ID [--json]`` prints the normalised balance of any credit connection.
- ``airflow-credits runway ACCOUNT --sql-conn-id ID`` prints an account's balance, burn per day, the
  forecast date it runs dry and a small chart of its recent history, from its landed balance snapshots.
- ``airflow-credits budgets set|list|show|delete|usage|import`` manages credit budgets (spend caps
  per period) in the reservation database, like ``airflow pools`` (see docs/budgets.md).
- ``airflow-credits sandbox [--port N]`` runs the offline sandbox in the foreground and prints the
  connections to use with it.

On Airflow 3.2 and later the same commands are also ``airflow credits ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_credits_provider.models import CreditBalance
    from airflow_credits_provider.sandbox import SandboxServer


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


def _load_connection(conn_id: str) -> None:
    """Find ``conn_id`` where ``airflow connections get`` does, and make it visible to this process's hooks.

    The credit hooks find a connection in the metadata database by themselves outside a task; the SQL
    hooks (the runway's warehouse) do not. The connection found is exported to this process's
    environment only, as Airflow's connection-test endpoint does, so that every hook reads it the
    usual way.
    """
    from airflow_credits_provider.hooks.resolve import get_connection

    variable = f"AIRFLOW_CONN_{conn_id.upper()}"
    if not os.environ.get(variable):
        os.environ[variable] = get_connection(conn_id).as_json()


def _balance(args: argparse.Namespace) -> int:
    from airflow_credits_provider.errors import CreditConnectionConfigError, CreditProviderError
    from airflow_credits_provider.hooks.resolve import get_credit_hook

    try:
        _load_connection(args.conn_id)
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

    from airflow_credits_provider.decision import to_amount
    from airflow_credits_provider.errors import CreditProviderError, NotEnoughHistoryError
    from airflow_credits_provider.operators.runway import read_snapshots
    from airflow_credits_provider.runway import daily_chart, forecast

    window = timedelta(days=args.window_days)
    try:
        reserve = to_amount(args.reserve, "--reserve")
        _load_connection(args.sql_conn_id)
        snapshots = read_snapshots(
            args.sql_conn_id,
            args.account,
            table=args.table,
            schema=args.schema,
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


#: The SQL connections of the example DAGs, as SQLite files in the sandbox's data directory.
SANDBOX_DATABASES = {"credits_warehouse": "warehouse.db", "credits_reservations": "reservations.db"}


def sandbox_connections(server: SandboxServer, data_dir: str) -> dict[str, dict[str, Any]]:
    """Every connection the example DAGs use: the sandbox's credit APIs and two SQLite databases."""
    conns = server.connections()
    for conn_id, name in SANDBOX_DATABASES.items():
        conns[conn_id] = {"conn_type": "sqlite", "host": os.path.join(os.path.abspath(data_dir), name)}
    return conns


def _sandbox(args: argparse.Namespace) -> int:
    import shlex

    from airflow_credits_provider.sandbox import SandboxServer, SandboxState

    os.makedirs(args.data_dir, exist_ok=True)  # SQLite creates its files, not their directory
    state = SandboxState(ledger_size=args.ledger_size)
    state.set_latency(args.latency, args.latency_jitter)
    server = SandboxServer(state, port=args.port)
    conns = sandbox_connections(server, args.data_dir)
    exports = [f"export AIRFLOW_CONN_{cid.upper()}={shlex.quote(json.dumps(c))}" for cid, c in conns.items()]
    adds = [
        f"airflow connections add {cid} --conn-json {shlex.quote(json.dumps(c))}" for cid, c in conns.items()
    ]
    if args.env_file:
        with open(args.env_file, "w") as handle:
            handle.write("\n".join(exports) + "\n")
    if args.connections_file:
        with open(args.connections_file, "w") as handle:
            json.dump(conns, handle, indent=2)
    out = args.out
    print(f"Credits sandbox serving on {server.url} (Ctrl-C to stop)", file=out)
    print(
        "Every connection the example DAGs use (sandbox keys, not real ones; credit_api_default is the "
        f"generic connection with the ZeroBounce preset; the SQLite databases are in {args.data_dir}).",
        file=out,
    )
    print(
        "\nTo add them to Airflow's metadata database (the UI, the scheduler and `airflow dags test`):",
        file=out,
    )
    print("\n".join(adds), file=out)
    if args.connections_file:
        print(f"(or all at once: airflow connections import {args.connections_file} --overwrite)", file=out)
    print("\nOr for this shell only:", file=out)
    print("\n".join(exports), file=out, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="airflow-credits",
        description="Look at credit balances, forecast runways, manage credit budgets and run the "
        "offline sandbox of the vendor APIs. Connections are read as Airflow reads them (environment, "
        "secrets backends, metadata database).",
        epilog="Run airflow-credits COMMAND --help for a command's options and exit codes.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

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
    runway.add_argument("--sql-conn-id", required=True, help="the SQL connection holding the snapshots")
    runway.add_argument("--table", default="credit_balance_snapshots", help="the snapshots table")
    runway.add_argument("--schema", default=None, help="its schema")
    runway.add_argument("--reserve", default="0", help="forecast reaching this many credits instead of zero")
    runway.add_argument(
        "--window-days", type=_positive, default=14, help="days of history to use (default 14)"
    )
    runway.add_argument(
        "--min-history-hours",
        type=_not_negative,
        default=1,
        help="the shortest span of history to forecast from (default 1)",
    )
    runway.add_argument(
        "--json", action="store_true", help="print JSON instead of text: CreditRunwayOperator's numbers"
    )
    runway.set_defaults(func=_runway)

    from airflow_credits_provider.budgets_cli import add_budgets_parser

    add_budgets_parser(commands)

    sandbox = commands.add_parser("sandbox", help="run the offline sandbox of the vendor APIs")
    sandbox.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0 picks a free one)")
    sandbox.add_argument("--ledger-size", type=int, default=28, help="LocalLeads transactions to serve")
    sandbox.add_argument(
        "--latency",
        type=_not_negative,
        default=0.0,
        help="seconds every vendor answer waits, as over a network (default 0)",
    )
    sandbox.add_argument(
        "--latency-jitter",
        type=_not_negative,
        default=0.0,
        help="up to this many seconds more per answer, uniformly at random (default 0)",
    )
    sandbox.add_argument("--env-file", help="also write the connection exports to this file")
    sandbox.add_argument(
        "--connections-file",
        help="also write the connections as JSON for: airflow connections import FILE --overwrite",
    )
    sandbox.add_argument(
        "--data-dir",
        default=os.path.join(
            os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), "credits-sandbox"
        ),
        help="directory of the SQLite databases credits_warehouse and credits_reservations "
        "(default: credits-sandbox in AIRFLOW_HOME, %(default)s)",
    )
    sandbox.set_defaults(func=_sandbox)
    return parser


def _positive(text: str) -> float:
    number = _not_negative(text)
    if number == 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return number


def _not_negative(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= number < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of 0 or more, got {text!r}")
    return number


def _quiet_airflow() -> None:
    """Keep Airflow's and its dependencies' start-up chatter off standard error.

    docs/cli.md promises one line on failure. Alembic 1.18 logs each of its plugins at INFO when
    Airflow imports it, and Airflow's configuration module adds a filter that shows the deprecation
    warnings raised in Airflow's modules (its own and SQLAlchemy's, such as the metastore's
    ``noload``): neither is anything a user of this command can act on.
    """
    import logging
    import warnings

    logging.getLogger("alembic").setLevel(logging.WARNING)
    import airflow.configuration  # noqa: F401 - its own warning filters go first; ours must follow

    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"airflow\.")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"airflow\.")
    # Airflow 3.0 logs through the standard library at INFO: every connection it reads ("Connection
    # Retrieved") and every request of httpx's. Its providers manager warns when two providers register
    # one connection type (3.0 with the standard provider) and, without Flask-AppBuilder (a plain
    # install of 3.1), logs that every hook's form widgets are missing: irrelevant outside the UI.
    for name in ("airflow", "airflow.task", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("airflow.providers_manager").setLevel(logging.ERROR)
    # With [core] load_examples on (a fresh airflow.cfg), common-sql's lineage loads Airflow's example
    # plugins, one of which warns that it cannot import pandas.
    logging.getLogger("airflow.example_dags.plugins").setLevel(logging.ERROR)
    # The generic connection type is named credit_api; Airflow warns, each time it reads one, that a
    # URI scheme should not contain "_" (nothing a user of this command can change).
    logging.getLogger("airflow.models.connection.Connection").addFilter(_not_about_the_scheme)


def _not_about_the_scheme(record: Any) -> bool:
    return "shall not contain '_'" not in record.getMessage()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "budgets":
        from airflow_credits_provider.budgets_cli import run

        # common-sql logs every statement at INFO; Airflow reads this when it configures logging.
        os.environ.setdefault("AIRFLOW__LOGGING__NAMESPACE_LEVELS", "airflow.task.hooks=warning")
        args.out = sys.stdout
        with contextlib.redirect_stdout(sys.stderr):
            _quiet_airflow()
            return run(args.func, args)
    if args.command not in ("balance", "runway"):
        args.out = sys.stdout
        return int(args.func(args))
    # Depending on its version, Airflow logs to standard output while it loads its configuration,
    # models and connections ("Connection Retrieved ..."), which would corrupt --json: while the
    # command runs, standard output is standard error, and only the result goes to the real one.
    args.out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        _quiet_airflow()
        return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
