"""``airflow-credits examples DIR``: copy the example DAGs (and their YAML files) into a DAG folder.

The examples ship inside the wheel (``airflow_credits_provider/example_dags``); in a checkout they are
the repository's ``example_dags/``. Each names the connections it uses at its top; the command prints
them, and ``airflow-credits sandbox --connections-file FILE`` makes every one of them.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from typing import Any

#: What an example's docstring says it uses: ``Connections: ``a``, ``b``.``
_CONNECTIONS = re.compile(r"^Connections: (.*?)(?:\n\n|\.\n)", re.MULTILINE | re.DOTALL)
_CONN_ID = re.compile(r"``([A-Za-z0-9_]+)``")


def examples_dir() -> Path:
    """Where the example DAGs are: inside the installed package, else the checkout's ``example_dags/``.

    :raises FileNotFoundError: neither exists (a package built without them)
    """
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "example_dags", package.parent / "example_dags"):
        if any(candidate.glob("example_*.py")):
            return candidate
    raise FileNotFoundError(f"no example DAGs next to {package} (this build of the package has none)")


def example_files(source: Path) -> list[Path]:
    """The examples and the files they load (YAML), sorted."""
    return sorted([*source.glob("example_*.py"), *source.glob("*.yaml")])


def connections_of(example: Path) -> list[str]:
    """The connection ids the example's docstring names (its ``Connections:`` line)."""
    found = _CONNECTIONS.search(example.read_text(encoding="utf-8"))
    return _CONN_ID.findall(found.group(1)) if found else []


def add_parser(commands: Any) -> None:
    """Add ``examples`` to an argparse sub-parsers object."""
    parser = commands.add_parser(
        "examples",
        help="copy the example DAGs into a folder (your DAG folder)",
        description="Copy the example DAGs and the YAML files they load into DIR (created if missing) and "
        "print the connections each uses. Existing files are kept unless --force. The sandbox makes every "
        "connection they name: airflow-credits sandbox --connections-file FILE, then airflow connections "
        "import FILE.",
    )
    parser.add_argument("directory", metavar="DIR", help="where to copy them, e.g. $AIRFLOW_HOME/dags")
    parser.add_argument("--force", action="store_true", help="overwrite files DIR already has")
    parser.set_defaults(func=_copy, uses_airflow=False)


def _copy(args: argparse.Namespace) -> int:
    try:
        source = examples_dir()
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    target = Path(args.directory).expanduser()
    files = example_files(source)
    clashes = [f.name for f in files if (target / f.name).exists()]
    if clashes and not args.force:
        print(
            f"error: {target} already has {', '.join(clashes)}: nothing copied (--force overwrites them)",
            file=sys.stderr,
        )
        return 1
    target.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copyfile(file, target / file.name)
    out = args.out
    print(f"Copied {len(files)} files to {target}:", file=out)
    for file in files:
        uses = connections_of(file) if file.suffix == ".py" else []
        print(f"  {file.name}" + (f"  (connections: {', '.join(uses)})" if uses else ""), file=out)
    print(
        "The sandbox makes every connection they use (credits_smtp only with aiosmtpd installed): "
        "airflow-credits sandbox --connections-file conns.json, then airflow connections import "
        "conns.json --overwrite (docs/sandbox.md).",
        file=out,
    )
    print(
        "The budgets and alert examples read their definitions from the database: airflow-credits "
        f"budgets import {target / 'team_budgets.yaml'} --conn-id credits_reservations, and alerts "
        f"import {target / 'team_alerts.yaml'} likewise (docs/budgets.md, docs/alerts.md).",
        file=out,
    )
    return 0
