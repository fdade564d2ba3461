"""``airflow credits ...``: this provider's command groups in Airflow's own CLI (the provider info ``cli``).

Airflow 3.2 and later add the command groups that providers declare. Building them imports nothing
heavy: each command's function is loaded when it runs.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_credits_provider.cli.groups import CommandGroup


def _groups() -> tuple[CommandGroup, ...]:
    """The command groups that live in Airflow's databases (and so belong in Airflow's CLI)."""
    from airflow_credits_provider.cli import alerts, budgets

    return (budgets.GROUP, alerts.GROUP)


def get_cli_commands() -> list[Any]:
    """``credits budgets ...`` and ``credits alerts ...``, as Airflow's ``GroupCommand``."""
    from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand, lazy_load_command

    return [
        GroupCommand(
            name="credits",
            help="Credit budgets and alerts of the credits provider (also the airflow-credits command)",
            subcommands=tuple(
                GroupCommand(
                    name=group.name,
                    help=group.help[:1].upper() + group.help[1:],
                    subcommands=[
                        ActionCommand(
                            name=command.name,
                            help=command.help,
                            func=lazy_load_command(f"{__name__}.{group.name}"),
                            args=tuple(Arg(option.flags, **option.kwargs) for option in command.options),  # type: ignore[no-untyped-call]
                        )
                        for command in group.commands
                    ],
                )
                for group in _groups()
            ),
        )
    ]


def _run(group_name: str, args: Any) -> None:
    """Run ``airflow credits <group> <command>`` (Airflow names the chosen command ``subcommand``)."""
    (group,) = (g for g in _groups() if g.name == group_name)
    code = group.run(args.subcommand, args)
    if code:
        sys.exit(code)


def budgets(args: Any) -> None:
    """``airflow credits budgets <command>``."""
    _run("budgets", args)


def alerts(args: Any) -> None:
    """``airflow credits alerts <command>``."""
    _run("alerts", args)
