"""The one place the command line keeps Airflow's and its dependencies' start-up chatter off its output."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextlib.contextmanager
def airflow_quieted() -> Iterator[None]:
    """Run a command that loads Airflow: standard output is standard error, start-up chatter is off.

    Depending on its version, Airflow logs to standard output while it loads its configuration, models
    and connections ("Connection Retrieved ..."), which would corrupt ``--json``: while the command runs,
    standard output is standard error, and only the result goes to the real one (commands print to
    ``args.out``). docs/cli.md promises one line on failure: see :func:`quiet_airflow`.
    """
    # common-sql logs every statement at INFO; Airflow reads this when it configures logging.
    os.environ.setdefault("AIRFLOW__LOGGING__NAMESPACE_LEVELS", "airflow.task.hooks=warning")
    with contextlib.redirect_stdout(sys.stderr):
        quiet_airflow()
        yield


def quiet_airflow() -> None:
    """Keep Airflow's and its dependencies' start-up chatter off standard error.

    Alembic 1.18 logs each of its plugins at INFO when Airflow imports it, and Airflow's configuration
    module adds a filter that shows the deprecation warnings raised in Airflow's modules (its own and
    SQLAlchemy's, such as the metastore's ``noload``): neither is anything a user of this command can act
    on.
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
