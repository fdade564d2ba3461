"""Look a connection up where Airflow does, in a task or outside one, and check what kind of hook it has."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from airflow_credits_provider.errors import CreditConnectionConfigError, CreditProviderError

#: Provider packages whose name is not ``apache-airflow-providers-<connection type>``.
_PACKAGES = {
    "mssql": "apache-airflow-providers-microsoft-mssql",
    "google_cloud_platform": "apache-airflow-providers-google",
    "gcpbigquery": "apache-airflow-providers-google",
    "aws": "apache-airflow-providers-amazon",
    "redshift": "apache-airflow-providers-amazon",
    "databricks": "apache-airflow-providers-databricks",
    "mariadb": "apache-airflow-providers-mysql",
}


def in_task() -> bool:
    """Whether this process runs a task (the Task SDK's supervisor answers its connection look-ups)."""
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(runner, "SUPERVISOR_COMMS", None) is not None


#: Airflow's connection types that no provider gives a hook (the UI offers them; nothing to install).
_HOOKLESS = frozenset({"generic", "email"})


def get_connection(conn_id: str) -> Any:
    """Look a connection up as Airflow does (environment, secrets backends, metadata database).

    In a task, the Task SDK asks the supervisor. Outside a task (a script, a notebook, this
    provider's CLI) the Task SDK sees environment variables and secrets backends but not the metadata
    database, so a connection made in the UI or with ``airflow connections add`` is then read the way
    ``airflow connections get`` reads it.

    An ``AIRFLOW_CONN_*`` variable that Airflow cannot read is skipped by Airflow without a word; the
    error then names it and Airflow's reason, and when another backend has the connection, a warning
    says which variable was passed over.

    :raises CreditConnectionConfigError: no such connection (instead of Airflow's bare not-found error)
    """
    from airflow_credits_provider.compat import AirflowNotFoundException, BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        if in_task():
            raise _unreadable_variable(conn_id) or CreditConnectionConfigError(
                f"Connection {conn_id!r} is not defined. {_CREATE_IT.format(env=_variable(conn_id))}"
            ) from None
        conn = _from_metadata_database(conn_id)
    _warn_if_variable_skipped(conn_id)
    return conn


_CREATE_IT = "Create it in the UI, with `airflow connections add`, or as the environment variable {env}."


def _variable(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def _from_metadata_database(conn_id: str) -> Any:
    """Airflow's own look-up outside a task: environment, secrets backends, then the metadata database."""
    # Airflow may print while it loads its models and secrets backends; standard output is the caller's.
    with contextlib.redirect_stdout(sys.stderr):
        from airflow.models.connection import Connection

        from airflow_credits_provider.compat import AirflowNotFoundException

        try:
            return Connection.get_connection_from_secrets(conn_id)
        except AirflowNotFoundException:
            pass
        except Exception as exc:  # an unreachable or uninitialised metadata database
            raise CreditConnectionConfigError(
                f"Connection {conn_id!r} is not in the environment or a secrets backend, and the "
                f"metadata database could not be read ({type(exc).__name__}: {_first_line(exc)[:200]}). "
                f"Run `airflow db migrate` (or point AIRFLOW_HOME or AIRFLOW__DATABASE__SQL_ALCHEMY_CONN "
                f"at your Airflow), or set the environment variable {_variable(conn_id)}."
            ) from None
    raise _unreadable_variable(conn_id) or CreditConnectionConfigError(
        f"Connection {conn_id!r} is not defined (looked in the environment, the secrets backends and "
        f"the metadata database). {_CREATE_IT.format(env=_variable(conn_id))}"
    )


def _unreadable_variable(conn_id: str) -> CreditConnectionConfigError | None:
    """Why Airflow passed over ``conn_id``'s environment variable, when it is set but Airflow cannot read it.

    Airflow's look-up skips a secrets backend that raises (a malformed URI or JSON, a port that is not a
    number, an ``extra`` that is not a dict) and then says the connection is not defined, although the
    user set it. The variable is read again here the way Airflow's environment backend reads it, and
    the reason is given without the variable's value, its password or its extras.
    """
    import os

    variable = _variable(conn_id)
    value = os.environ.get(variable)
    if not value:
        return None
    try:
        _read_variable(conn_id)
    except Exception as exc:
        # Masked first, then cut: a cut could split a secret past the mask.
        reason = _without_secrets(f"{type(exc).__name__}: {_first_line(exc)}", value)[:300]
        hint = (
            " Airflow 3.0 and 3.1 fail so with cryptography 51 or newer when a Fernet key is set: "
            "install 'cryptography<51' (Airflow's constraints file for your version pins an older one)."
            if "is_encrypted" in reason
            else " Its value must be a connection URI or a JSON object such as "
            '{"conn_type": ..., "password": ...}.'
        )
        return CreditConnectionConfigError(
            f"Connection {conn_id!r}: the environment variable {variable} is set, but Airflow cannot read "
            f"it as a connection ({reason}).{hint}"
        )
    return None


def _read_variable(conn_id: str) -> None:
    """Parse ``conn_id``'s environment variable as Airflow's environment backend does; raise if it cannot."""
    from airflow.secrets.environment_variables import EnvironmentVariablesBackend

    backend = EnvironmentVariablesBackend()
    if hasattr(backend, "_set_connection_class"):  # Airflow 3.2+: as the Task SDK reads it
        # Not with Airflow's ORM Connection, its default: that loads alembic, whose plugins log to
        # standard output as they load (which `airflow credits budgets show --json` prints).
        from airflow.sdk.definitions.connection import Connection

        backend._set_connection_class(Connection)
    backend.get_connection(conn_id)


def _warn_if_variable_skipped(conn_id: str) -> None:
    """Warn when ``conn_id`` was found elsewhere because Airflow could not read its environment variable."""
    problem = _unreadable_variable(conn_id)
    if problem is not None:
        import logging

        logging.getLogger(__name__).warning(
            "%s Airflow used the connection %r of a secrets backend or the metadata database instead; "
            "fix or unset %s.",
            problem,
            conn_id,
            _variable(conn_id),
        )


def _without_secrets(text: str, value: str) -> str:
    """``text`` with the connection ``value``, its password and its extras' values masked."""
    import json
    import re
    from urllib.parse import parse_qsl, unquote

    secrets = {value, repr(value)[1:-1]}  # as written, and as a message's %r or {!r} escapes it
    try:
        fields = json.loads(value)
    except ValueError:
        match = re.search(r"://[^:@/]*:([^@]*)@", value)
        secrets.update({unquote(match.group(1)), match.group(1)} if match else ())
        secrets.update(v for _, v in parse_qsl(value.partition("?")[2]))
    else:
        if isinstance(fields, dict):
            extra = fields.get("extra")
            if isinstance(extra, str):
                with contextlib.suppress(ValueError):
                    extra = json.loads(extra)
            secrets.update(_leaves([fields.get("password"), extra]))
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def _leaves(value: Any) -> list[str]:
    """Every scalar inside a JSON value, as text (the values of an ``extra``, however nested)."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [] if value is None else [str(value)]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def checked_hook(conn_id: str, conn: Any, expected: type, what: str) -> Any:
    """Return ``conn``'s hook, or fail clearly when it is not an ``expected`` hook.

    :param what: how to describe the mismatch, e.g. "not a SQL database connection type"
    """
    try:
        hook = conn.get_hook()
    except CreditProviderError:
        raise
    except Exception as exc:  # Airflow raises a bare AirflowException or ImportError here
        if conn.conn_type in _HOOKLESS:
            raise CreditConnectionConfigError(
                f"Connection {conn_id!r} has type {conn.conn_type!r}, one of Airflow's types without a "
                f"hook, so it is {what}: give it the type of what it connects to."
            ) from None
        package = _PACKAGES.get(conn.conn_type, f"apache-airflow-providers-{conn.conn_type}")
        raise CreditConnectionConfigError(
            f"Connection {conn_id!r} has type {conn.conn_type!r}, whose hook Airflow cannot load "
            f"({type(exc).__name__}): install the provider package for it, e.g. `pip install {package}`."
        ) from None
    if not isinstance(hook, expected):
        raise CreditConnectionConfigError(
            f"Connection {conn_id!r} has type {conn.conn_type!r}, which is {what}."
        )
    return hook


def load_connection(conn_id: str) -> Any:
    """Find ``conn_id`` where ``airflow connections get`` does, and make it visible to this process's hooks.

    Airflow's own hooks (the SQL hooks, a notifier's SMTP or Slack hook) look connections up the Task
    SDK's way, which outside a task sees the environment and secrets backends only. A connection found
    in the metadata database is exported to this process's environment, as Airflow's connection-test
    endpoint does, so that every hook reads it the usual way. In a task nothing is exported (the
    supervisor answers every hook). A connection that exists nowhere raises, naming it.

    :raises CreditConnectionConfigError: ``conn_id`` is defined nowhere
    """
    import os

    conn = get_connection(conn_id)
    variable = f"AIRFLOW_CONN_{conn_id.upper()}"
    if not in_task() and not os.environ.get(variable):
        os.environ[variable] = conn.as_json()
    return conn
