"""``airflow-credits``: look at balances, forecast runways, manage budgets and run the sandbox from a shell.

- ``airflow-credits balance CONN_ID [--json]`` prints the normalised balance of any credit connection.
- ``airflow-credits runway ACCOUNT --sql-conn-id ID`` prints an account's balance, burn per day, the
  forecast date it runs dry and a small chart of its recent history, from its landed balance snapshots.
- ``airflow-credits budgets set|list|show|delete|usage|import`` manages credit budgets (spend caps
  per period) in the reservation database, like ``airflow pools`` (see docs/budgets.md).
- ``airflow-credits alerts set|list|show|delete|import|history|test`` manages alert rules (warnings
  before a budget, a balance or a plan's credits run out or expire unused; see docs/alerts.md).
- ``airflow-credits sandbox [--port N]`` runs the offline sandbox in the foreground and prints the
  connections to use with it.
- ``airflow-credits examples DIR`` copies the example DAGs into a DAG folder and names their connections.

On Airflow 3.2 and later the budgets and alerts commands are also ``airflow credits ...``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser: one sub-command (or group of them) per module of this package."""
    from airflow_credits_provider.cli import alerts, balances, budgets, examples, sandbox
    from airflow_credits_provider.cli.groups import add_group

    parser = argparse.ArgumentParser(
        prog="airflow-credits",
        description="Look at credit balances, forecast runways, manage credit budgets and alerts, and run "
        "the offline sandbox of the vendor APIs. Connections are read as Airflow reads them (environment, "
        "secrets backends, metadata database).",
        epilog="Run airflow-credits COMMAND --help for a command's options and exit codes.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    balances.add_parsers(commands)
    add_group(commands, budgets.GROUP)
    add_group(commands, alerts.GROUP)
    sandbox.add_parser(commands)
    examples.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    from airflow_credits_provider.cli.quiet import airflow_quieted

    args = build_parser().parse_args(argv)
    args.out = sys.stdout
    if not getattr(args, "uses_airflow", True):  # sandbox, examples: their own output, no Airflow to quiet
        return int(args.func(args))
    with airflow_quieted():
        return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
