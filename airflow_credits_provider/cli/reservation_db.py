"""The reservation database, for the command groups that manage what lives in it (budgets).

The SQL connection given by ``--conn-id`` or, without it, ``[credits] reservations_conn_id``
(``AIRFLOW__CREDITS__RESERVATIONS_CONN_ID``): the one the Credits pages read. Exit codes: 0 ok, 1 a
database error, 2 bad input (nothing was written) or an unknown name.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from airflow_credits_provider.cli.groups import Option

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from airflow_credits_provider.reservations import ReservationStore

#: The options every command on the reservation database takes.
DB_OPTIONS = (
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


def run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a handler; bad input exits 2, database errors 1, each with one line on standard error."""
    import contextlib

    from airflow_credits_provider.errors import CreditConnectionConfigError, CreditProviderError, truncate

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
        print(
            f"error: the reservation database failed ({type(exc).__name__}: {truncate(str(exc), 300)}). "
            "Check the connection given by --conn-id or [credits] reservations_conn_id.",
            file=sys.stderr,
        )
        return 1


def reservation_store(args: argparse.Namespace) -> ReservationStore:
    """The reservation store of ``--conn-id`` (or ``[credits] reservations_conn_id``)."""
    from airflow_credits_provider.cli.connections import credits_setting
    from airflow_credits_provider.errors import CreditConnectionConfigError
    from airflow_credits_provider.hooks.connections import load_connection
    from airflow_credits_provider.reservations import ReservationStore
    from airflow_credits_provider.sql.connections import sql_hook_for

    conn_id = args.conn_id or credits_setting("reservations_conn_id")
    if not conn_id:
        raise CreditConnectionConfigError(
            "No reservation database: pass --conn-id, or set [credits] reservations_conn_id "
            "(AIRFLOW__CREDITS__RESERVATIONS_CONN_ID) to the SQL connection the preflights' "
            "reservation_conn_id names."
        )
    load_connection(conn_id)
    hook = sql_hook_for(conn_id)
    return ReservationStore(
        hook,
        table=args.table or credits_setting("reservations_table") or "credit_reservations",
        schema=args.schema or credits_setting("reservations_schema") or None,
        usage_table=args.usage_table or credits_setting("usage_table") or "credit_usage",
    )


def usage_error(message: str) -> int:
    """Print a bad-input error and return its exit code (2)."""
    print(f"error: {message}", file=sys.stderr)
    return 2
