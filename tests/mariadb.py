"""
Find the MariaDB/MySQL server the landing tests use.

- ``CREDITS_TEST_MYSQL_URI`` set (``mysql://user[:password]@host:port/database``): use it; unreachable,
  or the MySQL provider not installed, is a failure.
- Unset under CI (``CI=true``): a failure; CI must run the MariaDB tests, never skip them.
- Unset elsewhere: try ``mysql://root@127.0.0.1:3306/test``; skip with the reason when the MySQL
  provider is not installed (its ``mysqlclient`` needs Debian's ``libmariadb-dev`` and ``pkg-config`` to
  build; ``make install`` adds it once they are there) or no server answers.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from tests.postgres import use_or_explain

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pytest

ENV_VAR = "CREDITS_TEST_MYSQL_URI"
LOCAL_DEFAULT = "mysql://root@127.0.0.1:3306/test"
NO_PROVIDER = (
    "the MySQL provider is not installed (mysqlclient builds from source: `apt-get install "
    "libmariadb-dev pkg-config`, then `make install`)"
)


def conn_json(uri: str) -> str:
    """An Airflow ``mysql`` connection (JSON form) for the server named by ``uri``."""
    from tests.warehouse_support import conn_json_from_uri

    return conn_json_from_uri(uri, "mysql", 3306, "root", "test")


def _reachable(uri: str) -> str | None:
    """None when a query succeeds, else the reason."""
    try:
        import MySQLdb
    except ImportError:
        return NO_PROVIDER
    parts = urlsplit(uri)
    try:
        conn = MySQLdb.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            database=parts.path.lstrip("/") or "test",
            connect_timeout=5,
        )
        conn.close()
    except MySQLdb.Error as exc:
        return str(exc)
    return None


@functools.lru_cache(maxsize=1)
def _find() -> tuple[str | None, str]:
    uri = os.environ.get(ENV_VAR)
    if uri:
        reason = _reachable(uri)
        return (uri, "") if reason is None else (None, f"fail:{ENV_VAR}={uri} is unusable: {reason}")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return None, f"fail:{ENV_VAR} is not set; CI must run the MariaDB tests (see .ci/run)"
    reason = _reachable(LOCAL_DEFAULT)
    if reason is None:
        return LOCAL_DEFAULT, ""
    return None, f"skip:{reason} (tried {LOCAL_DEFAULT}; set {ENV_VAR})"


def mysql_uri() -> str:
    """The URI to use, or fail/skip the calling test as the rules above say."""
    return use_or_explain(_find(), "MariaDB")


@contextlib.contextmanager
def mariadb_database_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, uri: str) -> Iterator[str]:
    """Point ``conn_id`` at a new database of its own on the MariaDB server named by ``uri``.

    For tables whose names are fixed (the example DAGs' defaults), as ``postgres_schema_connection`` is
    on PostgreSQL: CI's lanes run the same tests at once against one server. Yields the database's name
    and drops it afterwards.
    """
    from airflow_credits_provider.sql.connections import sql_hook_for
    from tests.warehouse_support import unique_table

    database = unique_table("db")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json(uri))
    sql_hook_for(conn_id).run(f"CREATE DATABASE {database}")
    own = urlunsplit(urlsplit(uri)._replace(path=f"/{database}"))
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json(own))
    try:
        yield database
    finally:
        sql_hook_for(conn_id).run(f"DROP DATABASE {database}")
