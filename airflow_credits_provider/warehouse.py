"""The warehouse side of landing: table layouts, portable DDL, identifier checks, typed rows, cursors.

Works with any common-sql ``DbApiHook``. Upserts go through common-sql's dialect machinery
(``insert_rows(..., replace=True, replace_index=...)``); the only SQL written here is ``CREATE TABLE IF
NOT EXISTS``, one ``SELECT`` of a cursor and one ``DELETE`` for full refreshes, all with validated,
dialect-escaped identifiers and bound parameters.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import CreditConnectionConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from datetime import datetime

    from pendulum import DateTime

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

#: Column types per SQL dialect: exact amounts, UTC timestamps, unbounded text.
#: SQLite has no exact decimal type, so amounts are stored as exact decimal text there.
_TYPES: dict[str, dict[str, str]] = {
    "sqlite": {"key": "TEXT", "amount": "TEXT", "ts": "TEXT", "text": "TEXT"},
    "postgresql": {"key": "VARCHAR(255)", "amount": "NUMERIC(38, 10)", "ts": "TIMESTAMP", "text": "TEXT"},
    "mysql": {"key": "VARCHAR(255)", "amount": "DECIMAL(38, 10)", "ts": "DATETIME(6)", "text": "LONGTEXT"},
}
_ANSI = _TYPES["postgresql"]


@dataclass(frozen=True)
class Column:
    """A column of a landing table: name, kind (key, amount, ts, text) and nullability."""

    name: str
    kind: str
    nullable: bool = True


TRANSACTION_COLUMNS = (
    Column("provider", "key", False),
    Column("account", "key", False),
    Column("transaction_id", "key", False),
    Column("type", "key", False),
    Column("amount", "amount", False),
    Column("description", "text"),
    Column("created_at", "ts", False),
    Column("loaded_at", "ts", False),
    Column("raw", "text"),
)
TRANSACTION_KEY = ("provider", "account", "transaction_id")

SNAPSHOT_COLUMNS = (
    Column("provider", "key", False),
    Column("account", "key", False),
    Column("fetched_at", "ts", False),
    Column("available", "amount", False),
    Column("total", "amount"),
    Column("monthly", "amount"),
    Column("used", "amount"),
    Column("bonus", "amount"),
    Column("locked", "amount"),
    Column("plan", "key"),
    Column("period_end", "ts"),
    Column("next_reset_at", "ts"),
    Column("loaded_at", "ts", False),
    Column("raw", "text"),
)
SNAPSHOT_KEY = ("provider", "account", "fetched_at")

CURSOR_COLUMNS = (
    Column("provider", "key", False),
    Column("account", "key", False),
    Column("cursor_at", "ts", False),
    Column("updated_at", "ts", False),
)
CURSOR_KEY = ("provider", "account")


def check_identifier(value: str, what: str) -> str:
    """Accept a plain SQL identifier (letters, digits, underscores; at most 63 characters) or fail clearly."""
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise CreditConnectionConfigError(
            f"{what} {value!r} is not a plain SQL identifier: use letters, digits and underscores, "
            "starting with a letter or underscore, at most 63 characters."
        )
    return value


class WarehouseTable:
    """One landing table in one database, reached through a common-sql hook.

    :param hook: a ``DbApiHook`` (Postgres, SQLite, MySQL, ...)
    :param table: table name (validated)
    :param schema: schema name (validated), or ``None`` for the default
    :param columns: the table's columns
    :param key: the primary key's columns
    """

    def __init__(
        self,
        hook: Any,
        table: str,
        schema: str | None,
        columns: Sequence[Column],
        key: Sequence[str],
    ) -> None:
        self.hook = hook
        self.columns = tuple(columns)
        self.key = tuple(key)
        self.dialect_name = str(getattr(hook, "dialect_name", "") or "")
        self.types = _TYPES.get(self.dialect_name, _ANSI)
        self.table = check_identifier(table, "Table name")
        self.schema = check_identifier(schema, "Schema name") if schema else None
        escape = hook.dialect.escape_word
        self.qualified = ".".join(escape(p) for p in ((self.schema,) if self.schema else ()) + (self.table,))
        self._escape = escape

    @property
    def column_names(self) -> list[str]:
        """The columns in table order."""
        return [c.name for c in self.columns]

    def create(self) -> None:
        """Create the table when it is missing (``CREATE TABLE IF NOT EXISTS``); never drops anything."""
        lines = [
            f"{self._escape(c.name)} {self.types[c.kind]}{'' if c.nullable else ' NOT NULL'}"
            for c in self.columns
        ]
        lines.append(f"PRIMARY KEY ({', '.join(self._escape(k) for k in self.key)})")
        self.hook.run(f"CREATE TABLE IF NOT EXISTS {self.qualified} (\n  " + ",\n  ".join(lines) + "\n)")

    def upsert(self, rows: Iterable[tuple[Any, ...]], batch_size: int = 2000) -> int:
        """Insert or replace ``rows`` (in table column order) on the primary key; return their number.

        ``rows`` may be a generator: it is consumed in batches of ``batch_size``, each committed in its
        own transaction over one connection, so memory holds one batch at a time.
        """
        counted = _Counter(rows)
        self.hook.insert_rows(
            self.qualified,
            map(self._adapt, counted) if self.dialect_name == "sqlite" else counted,
            target_fields=self.column_names,
            commit_every=batch_size,
            replace=True,
            replace_index=list(self.key),
            executemany=True,
        )
        return counted.count

    def _adapt(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """Driver-friendly cells: SQLite gets text for decimals and times (exact, sortable)."""
        if self.dialect_name != "sqlite":
            return row
        return tuple(map(_sqlite_cell, row))

    def param(self) -> str:
        """The driver's bound-parameter placeholder."""
        return str(self.hook.placeholder)

    def where_key(self, columns: Sequence[str]) -> str:
        """``a = ? AND b = ?`` for ``columns``."""
        return " AND ".join(f"{self._escape(c)} = {self.param()}" for c in columns)


class _Counter:
    """Pass an iterable through, counting its items."""

    def __init__(self, items: Iterable[tuple[Any, ...]]) -> None:
        self._items = items
        self.count = 0

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for item in self._items:
            self.count += 1
            yield item


def _sqlite_cell(cell: Any) -> Any:
    from decimal import Decimal

    if isinstance(cell, Decimal):
        return f"{cell:f}"
    if hasattr(cell, "isoformat") and hasattr(cell, "hour"):
        return to_naive_utc(cell).isoformat(sep=" ", timespec="microseconds")
    return cell


def to_naive_utc(moment: datetime) -> datetime:
    """A naive datetime in UTC (what TIMESTAMP / DATETIME columns hold by this provider's convention)."""
    from datetime import datetime, timezone

    offset = moment.utcoffset()
    if offset:  # aware, not UTC (UTC, the common case, needs no conversion)
        moment = moment.astimezone(timezone.utc)
    # A plain datetime, not a pendulum one: drivers subtract epochs from it, and pendulum's
    # arithmetic is several times slower (it dominated bulk upserts into PostgreSQL).
    return datetime(
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, moment.microsecond
    )


def parse_stored_time(value: Any) -> DateTime | None:
    """Read a timestamp back from any driver (datetime or text) as a UTC pendulum ``DateTime``."""
    import pendulum

    if value is None:
        return None
    if isinstance(value, str):
        parsed = pendulum.parse(value, tz="UTC")
        assert isinstance(parsed, pendulum.DateTime)
        return parsed
    moment = pendulum.instance(value, tz="UTC") if value.tzinfo is None else pendulum.instance(value)
    return moment.in_timezone("UTC")  # type: ignore[no-any-return]


def raw_json(record: Any) -> str:
    """The vendor's record as compact JSON text (exactly as received, Unicode kept)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
