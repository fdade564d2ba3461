"""``airflow-credits sandbox``: the offline sandbox of the vendor APIs, with the connections it serves."""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.cli.arguments import not_negative

if TYPE_CHECKING:
    import argparse

    from airflow_credits_provider.sandbox import SandboxServer
    from airflow_credits_provider.sandbox.inbox import SandboxInbox


def add_parser(commands: Any) -> None:
    """Add ``sandbox`` to an argparse sub-parsers object."""
    sandbox = commands.add_parser("sandbox", help="run the offline sandbox of the vendor APIs")
    sandbox.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0 picks a free one)")
    sandbox.add_argument("--ledger-size", type=int, default=28, help="LocalLeads transactions to serve")
    sandbox.add_argument(
        "--latency",
        type=not_negative,
        default=0.0,
        help="seconds every vendor answer waits, as over a network (default 0)",
    )
    sandbox.add_argument(
        "--latency-jitter",
        type=not_negative,
        default=0.0,
        help="up to this many seconds more per answer, uniformly at random (default 0)",
    )
    sandbox.add_argument(
        "--smtp-port", type=int, default=0, help="port of the SMTP inbox on 127.0.0.1 (default: a free one)"
    )
    sandbox.add_argument(
        "--history-days",
        type=int,
        default=0,
        help="land this many days of synthetic hourly balance snapshots per sandbox account into the "
        "credits_warehouse database, ending at the balance served now (accounts that already have "
        "snapshots are left alone; default 0: none). Gives the Credits page a chart and a runway",
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
    sandbox.set_defaults(func=_sandbox, uses_airflow=False)


#: The SQL connections of the example DAGs, as SQLite files in the sandbox's data directory.
SANDBOX_DATABASES = {"credits_warehouse": "warehouse.db", "credits_reservations": "reservations.db"}


def sandbox_connections(
    server: SandboxServer, data_dir: str, inbox: SandboxInbox | None = None
) -> dict[str, dict[str, Any]]:
    """Every connection the example DAGs use: the sandbox's credit APIs, two SQLite databases, its inbox."""
    conns = server.connections()
    for conn_id, name in SANDBOX_DATABASES.items():
        conns[conn_id] = {"conn_type": "sqlite", "host": os.path.join(os.path.abspath(data_dir), name)}
    if inbox is not None:
        from airflow_credits_provider.sandbox.inbox import INBOX_CONN_ID

        conns[INBOX_CONN_ID] = inbox.connection()
    return conns


def _sandbox(args: argparse.Namespace) -> int:
    import shlex

    from airflow_credits_provider.sandbox import SandboxServer, SandboxState
    from airflow_credits_provider.sandbox.inbox import SandboxInbox

    os.makedirs(args.data_dir, exist_ok=True)  # SQLite creates its files, not their directory
    state = SandboxState(ledger_size=args.ledger_size)
    state.set_latency(args.latency, args.latency_jitter)
    try:
        server = SandboxServer(state, port=args.port)
    except OSError as exc:  # the port is taken (or not ours to bind): say so in one line
        print(
            f"error: cannot serve the sandbox on 127.0.0.1:{args.port}: {exc.strerror or exc}; pick another "
            "port with --port N (0: a free one)",
            file=sys.stderr,
        )
        return 1
    inbox = SandboxInbox(state, port=args.smtp_port).start() if SandboxInbox.available() else None
    conns = sandbox_connections(server, args.data_dir, inbox)
    server.start()  # serving from here on: the history below reads the balances through the hooks
    seeded = _land_history(conns, args.history_days) if args.history_days > 0 else []
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
    print("\n".join(exports), file=out)
    if inbox is not None:
        print(
            f"\nSMTP inbox on 127.0.0.1:{inbox.port} (connection credits_smtp, what the example alert rules "
            f"use): what it receives is listed at {server.url}/_sandbox/inbox",
            file=out,
        )
    else:
        print("\nNo SMTP inbox (install aiosmtpd for one: the example alert rules send to it).", file=out)
    if seeded:
        print(f"\nBalance history ({args.history_days} days, hourly) landed in credits_warehouse:", file=out)
        print("\n".join(seeded), file=out)
    out.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if inbox is not None:
            inbox.stop()
    return 0


def _land_history(conns: dict[str, dict[str, Any]], days: int) -> list[str]:
    """Land ``days`` of synthetic snapshots for each sandbox credit connection without snapshots.

    The balance each ends at is read through the connection's own hook, as CreditBalanceToSqlOperator
    reads it, so the Credits page's history and its live balance agree. One line per account.
    """
    from datetime import datetime, timezone

    from airflow_credits_provider.sandbox.history import story_history
    from airflow_credits_provider.sql.connections import sql_hook_for
    from airflow_credits_provider.sql.snapshot_history import has_snapshots, land_snapshots
    from airflow_credits_provider.ui.balances import hook_class
    from airflow_credits_provider.vendors import registered_vendors

    credit_types = set(registered_vendors())
    # This process is the sandbox: its hooks read the connections it serves from its environment.
    os.environ.update({f"AIRFLOW_CONN_{cid.upper()}": json.dumps(conn) for cid, conn in conns.items()})
    lines = []
    warehouse = sql_hook_for("credits_warehouse")
    now = datetime.now(timezone.utc)
    for conn_id, conn in conns.items():
        if conn["conn_type"] not in credit_types:
            continue
        if has_snapshots(warehouse, "credit_balance_snapshots", conn_id):
            lines.append(f"  {conn_id}: already has snapshots, left as they are")
            continue
        with hook_class(conn["conn_type"])(conn_id) as hook:
            balance = hook.get_balance()
        history = story_history(balance, days, now)
        land_snapshots(warehouse, "credit_balance_snapshots", balance.vendor, conn_id, history)
        lines.append(f"  {conn_id}: {len(history)} snapshots ending at {balance.available}")
    return lines
