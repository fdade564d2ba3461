"""``airflow credits ...``: this provider's commands in Airflow's own CLI (the provider info ``cli``).

Airflow 3.2 and later add the command groups that providers declare. Building them imports nothing
heavy: each command's function is loaded when it runs.
"""

from __future__ import annotations

from typing import Any


def get_cli_commands() -> list[Any]:
    """``credits budgets set|list|show|delete|usage|import``, as Airflow's ``GroupCommand``."""
    from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand, lazy_load_command

    from airflow_credits_provider.budgets_cli import COMMANDS

    budgets = [
        ActionCommand(
            name=command.name,
            help=command.help,
            func=lazy_load_command("airflow_credits_provider.airflow_cli.budgets"),
            args=tuple(Arg(option.flags, **option.kwargs) for option in command.options),  # type: ignore[no-untyped-call]
        )
        for command in COMMANDS
    ]
    return [
        GroupCommand(
            name="credits",
            help="Credit budgets of the credits provider (also the airflow-credits command)",
            subcommands=(
                GroupCommand(
                    name="budgets", help="Manage credit budgets (spend caps per period)", subcommands=budgets
                ),
            ),
        )
    ]


def budgets(args: Any) -> None:
    """Run ``airflow credits budgets <command>`` (Airflow names the chosen command ``subcommand``)."""
    import sys

    from airflow_credits_provider import budgets_cli

    code = budgets_cli.run(getattr(budgets_cli, f"budgets_{args.subcommand}"), args)
    if code:
        sys.exit(code)
