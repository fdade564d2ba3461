"""A command group's sub-commands, declared once and given to argparse and to Airflow's own CLI.

``airflow-credits budgets set ...`` and ``airflow credits budgets set ...`` are the same command: each
group module declares a :class:`CommandGroup` whose commands name their handler functions, and both
command lines are built from it.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Option:
    """One command-line argument: its flags and argparse keywords."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


#: ``--json``: machine-readable output, as every listing command takes it.
JSON_OPTION = Option(("--json",), {"action": "store_true", "help": "print JSON instead of text"})


@dataclass(frozen=True)
class Command:
    """One sub-command of a group: its name, help, handler (a function of the group's module) and options."""

    name: str
    help: str
    handler: str
    options: tuple[Option, ...]


@dataclass(frozen=True)
class CommandGroup:
    """A group of sub-commands (``budgets``), its handlers in ``module``.

    :param name: the group's name on the command line
    :param help: one line, for the list of commands
    :param description: the group's ``--help`` text
    :param module: the module whose functions the commands name
    :param commands: the sub-commands
    :param runner: runs a handler and maps its errors to exit codes (one line on standard error)
    """

    name: str
    help: str
    description: str
    module: str
    commands: tuple[Command, ...]
    runner: Callable[[Handler, argparse.Namespace], int]

    def handler(self, command: str) -> Handler:
        """The function that runs sub-command ``command``."""
        by_name = {c.name: c.handler for c in self.commands}
        return getattr(importlib.import_module(self.module), by_name[command])  # type: ignore[no-any-return]

    def run(self, command: str, args: argparse.Namespace) -> int:
        """Run sub-command ``command``; return its exit code."""
        return self.runner(self.handler(command), args)


def add_group(commands: Any, group: CommandGroup) -> None:
    """Add ``group`` and its sub-commands to an argparse sub-parsers object."""
    parser = commands.add_parser(group.name, help=group.help, description=group.description)
    subs = parser.add_subparsers(dest=f"{group.name}_command", required=True)
    for command in group.commands:
        sub = subs.add_parser(command.name, help=command.help, description=command.help)
        for option in command.options:
            sub.add_argument(*option.flags, **option.kwargs)
        sub.set_defaults(func=functools.partial(group.run, command.name))
