"""The warehouse side of landing: table layouts, portable DDL, identifier checks, typed rows, cursors.

Works with any common-sql ``DbApiHook``. Upserts go through common-sql's dialect machinery
(``insert_rows(..., replace=True, replace_index=...)``), except on PostgreSQL, where they stream through
``COPY`` into a staging table (:mod:`~airflow_credits_provider.sql.copy_upsert`). Besides that, the
only SQL written here is ``CREATE TABLE IF NOT EXISTS``, one ``SELECT`` of a cursor and one ``DELETE``
for full refreshes, all with validated, dialect-escaped identifiers and bound parameters.

Values are stored exactly or not at all: amounts go into ``NUMERIC`` without a fixed scale on
PostgreSQL, ``DECIMAL(65, 30)`` on MySQL/MariaDB (checked before writing: a value it cannot hold exactly
fails the run naming the row) and exact decimal text on SQLite. Key columns compare exactly on every
database (a binary collation on MySQL/MariaDB, whose default ignores case and trailing spaces). A row the
database would reject (NUL in PostgreSQL text, a lone surrogate anywhere) fails the run naming its key.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

import msgspec

from airflow_credits_provider.errors import (
    CreditConnectionConfigError,
    CreditProviderError,
    RowRejectedError,
    truncate,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from pendulum import DateTime

#: Longest identifier every supported database accepts (PostgreSQL's 63; MySQL allows 64).
MAX_IDENTIFIER = 63
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Column types per SQL dialect: exact amounts, UTC timestamps, unbounded text, exactly compared keys.
#: SQLite has no exact decimal type, so amounts are stored as exact decimal text there. MySQL and MariaDB
#: compare VARCHARs ignoring case and trailing spaces by default, and even ``utf8mb4_bin`` pads: keys get
#: a binary collation without padding, named differently by each ({collation} is filled at creation).
_MYSQL_TEXT = "CHARACTER SET utf8mb4 COLLATE {collation}"
_MYSQL_NO_PAD = {"mariadb": "utf8mb4_nopad_bin", "mysql": "utf8mb4_0900_bin"}
_TYPES: dict[str, dict[str, str]] = {
    "sqlite": {"key": "TEXT", "amount": "TEXT", "ts": "TEXT", "text": "TEXT", "int": "INTEGER"},
    "postgresql": {
        "key": "VARCHAR(255)",
        "amount": "NUMERIC",
        "ts": "TIMESTAMP",
        "text": "TEXT",
        "int": "BIGINT",
    },
    "mysql": {
        "int": "BIGINT",
        "key": f"VARCHAR(255) {_MYSQL_TEXT}",
        "amount": "DECIMAL(65, 30)",
        "ts": "DATETIME(6)",
        "text": f"LONGTEXT {_MYSQL_TEXT}",
    },
}
_ANSI = _TYPES["postgresql"]
#: The same, as psycopg names the types for a binary COPY.
_POSTGRES_COPY_TYPES = {
    "key": "varchar",
    "amount": "numeric",
    "ts": "timestamp",
    "text": "text",
    "int": "int8",
}
#: Digits before and after the point that MySQL's DECIMAL(65, 30) holds.
_MYSQL_DECIMAL = (35, 30)


@dataclass(frozen=True)
class Column:
    """A column of a provider table: name, kind (key, amount, ts, text, int) and nullability."""

    name: str
    kind: str
    nullable: bool = True


TRANSACTION_COLUMNS = (
    Column("vendor", "key", False),
    Column("account", "key", False),
    Column("transaction_id", "key", False),
    Column("type", "key", False),
    Column("amount", "amount", False),
    Column("description", "text"),
    Column("created_at", "ts", False),
    Column("loaded_at", "ts", False),
    Column("raw", "text"),
)
TRANSACTION_KEY = ("vendor", "account", "transaction_id")

SNAPSHOT_COLUMNS = (
    Column("vendor", "key", False),
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
SNAPSHOT_KEY = ("vendor", "account", "fetched_at")

CURSOR_COLUMNS = (
    Column("vendor", "key", False),
    Column("account", "key", False),
    Column("cursor_at", "ts", False),
    Column("updated_at", "ts", False),
)
CURSOR_KEY = ("vendor", "account")
#: The cursor table of a transactions table ``t`` is ``t`` + this suffix.
CURSOR_SUFFIX = "_cursor"


def check_identifier(value: str, what: str, *, reserve: int = 0, why: str = "") -> str:
    """Accept a plain SQL identifier (letters, digits, underscores) short enough for every database.

    :param reserve: characters kept for a suffix the provider appends to make another name from it
    :param why: the reason for ``reserve``, in the user's terms
    """
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise CreditConnectionConfigError(
            f"{what} {truncate(repr(value), 80)} is not a plain SQL identifier: use letters, digits and "
            "underscores, starting with a letter or underscore."
        )
    limit = MAX_IDENTIFIER - reserve
    if len(value) > limit:
        because = why or f"PostgreSQL allows {MAX_IDENTIFIER}"
        raise CreditConnectionConfigError(
            f"{what} {value!r} has {len(value)} characters; it can have at most {limit} because {because}."
        )
    return value


def check_transactions_table(table: str) -> str:
    """Validate a transactions table name, leaving room for its cursor table's name."""
    return check_identifier(
        table,
        "Table name",
        reserve=len(CURSOR_SUFFIX),
        why=f"its cursor table is named <table>{CURSOR_SUFFIX} and PostgreSQL allows {MAX_IDENTIFIER} "
        "characters in a name",
    )


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
        self._text_cells = [i for i, c in enumerate(columns) if c.kind in ("key", "text")]
        self._amount_cells = [i for i, c in enumerate(columns) if c.kind == "amount"]
        self._key_cells = [i for i, c in enumerate(columns) if c.name in key]
        self.table = check_identifier(table, "Table name")
        self.schema = check_identifier(schema, "Schema name") if schema else None
        # common-sql's escape_word looks its reserved words up on every call: statements built inside a
        # reservation's lock would spend more on quoting than on the database.
        escape = functools.cache(hook.dialect.escape_word)
        self.qualified = ".".join(escape(p) for p in ((self.schema,) if self.schema else ()) + (self.table,))
        self._escape = escape

    @property
    def column_names(self) -> list[str]:
        """The columns in table order."""
        return [c.name for c in self.columns]

    def create(self) -> None:
        """Create the table when it is missing (``CREATE TABLE IF NOT EXISTS``); never drops anything."""
        types = self.types
        if self.dialect_name == "mysql":
            version = str(self.hook.get_first("SELECT VERSION()")[0])
            collation = _MYSQL_NO_PAD["mariadb" if "mariadb" in version.lower() else "mysql"]
            types = {kind: sql.format(collation=collation) for kind, sql in types.items()}
        lines = [
            f"{self._escape(c.name)} {types[c.kind]}{'' if c.nullable else ' NOT NULL'}" for c in self.columns
        ]
        lines.append(f"PRIMARY KEY ({', '.join(self._escape(k) for k in self.key)})")
        self.hook.run(f"CREATE TABLE IF NOT EXISTS {self.qualified} (\n  " + ",\n  ".join(lines) + "\n)")
        self._add_missing_columns(types)

    def _add_missing_columns(self, types: dict[str, str]) -> None:
        """Add the nullable columns a table created by an earlier release lacks (``ALTER TABLE ... ADD``).

        Only nullable columns are ever added, so rows written before keep their meaning (``NULL``). A
        concurrent upgrader's duplicate column is ignored.
        """
        existing = self.existing_columns()
        for column in self.columns:
            if column.name.lower() in existing:
                continue
            if not column.nullable:
                raise CreditConnectionConfigError(
                    f"Table {self.qualified} has no column {column.name!r}: it was made by something else. "
                    "Use another table name or drop it."
                )
            try:
                name, kind = self._escape(column.name), types[column.kind]
                self.hook.run(f"ALTER TABLE {self.qualified} ADD COLUMN {name} {kind}")
            except Exception:
                if column.name.lower() not in self.existing_columns():  # not a concurrent upgrader's
                    raise

    def existing_columns(self) -> set[str]:
        """The table's column names (lower case), read from an empty result."""
        from contextlib import closing

        with closing(self.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            cur.execute(f"SELECT * FROM {self.qualified} WHERE 1 = 0")
            names = {str(d[0]).lower() for d in cur.description or ()}
            cur.fetchall()
            if self.dialect_name != "sqlite":
                conn.rollback()
        return names

    def create_index(self, suffix: str, columns: Sequence[str]) -> None:
        """Create the index ``<table>_<suffix>`` on ``columns`` when it is missing.

        MySQL has no ``CREATE INDEX IF NOT EXISTS``: there the index is looked up first, and a
        concurrent creator's duplicate is ignored.
        """
        name = check_identifier(f"{self.table}_{suffix}", "Index name")
        index, cols = self._escape(name), ", ".join(self._escape(c) for c in columns)
        if self.dialect_name == "sqlite":  # SQLite qualifies the index's name, not the table's
            schema = f"{self._escape(self.schema)}." if self.schema else ""
            self.hook.run(
                f"CREATE INDEX IF NOT EXISTS {schema}{index} ON {self._escape(self.table)} ({cols})"
            )
            return
        if self.dialect_name != "mysql":
            self.hook.run(f"CREATE INDEX IF NOT EXISTS {index} ON {self.qualified} ({cols})")
            return
        exists = (
            "SELECT 1 FROM information_schema.statistics WHERE table_schema = "
            f"{'%s' if self.schema else 'DATABASE()'} AND table_name = %s AND index_name = %s"
        )
        params = ((self.schema,) if self.schema else ()) + (self.table, name)
        if self.hook.get_first(exists, parameters=params):
            return
        try:
            self.hook.run(f"CREATE INDEX {index} ON {self.qualified} ({cols})")
        except Exception:
            if not self.hook.get_first(exists, parameters=params):  # not a concurrent creator's: a real error
                raise

    def upsert(self, rows: Iterable[tuple[Any, ...]], batch_size: int = 2000) -> int:
        """Insert or replace ``rows`` (in table column order) on the primary key; return their number.

        ``rows`` may be a generator: it is consumed in batches of ``batch_size``, each committed in its
        own transaction over one connection, so memory holds one batch at a time.

        :raises RowRejectedError: a row cannot be stored exactly (checked before it is sent) or the
            database rejected it; the message names the row's key. Batches before it stay committed.
        """
        return self.upsert_chunks(_chunked(rows), batch_size)

    def upsert_chunks(self, chunks: Iterable[Sequence[tuple[Any, ...]]], batch_size: int = 2000) -> int:
        """:meth:`upsert` for rows that come in chunks (a page each): checked and sent a chunk at a time."""
        batches = _Batches(chunks, self, batch_size)
        try:
            if self.dialect_name == "postgresql":
                from airflow_credits_provider.sql.copy_upsert import PostgresCopyUpsert

                types = [_POSTGRES_COPY_TYPES[c.kind] for c in self.columns]
                PostgresCopyUpsert(
                    self.hook, self.table, self.qualified, self.column_names, types, self.key, self._escape
                ).upsert(batches)
            else:
                rows = chain.from_iterable(chain.from_iterable(batches))
                self.hook.insert_rows(
                    self.qualified,
                    map(self.adapt, rows) if self.dialect_name == "sqlite" else rows,
                    target_fields=self.column_names,
                    commit_every=batch_size,
                    replace=True,
                    replace_index=list(self.key),
                    executemany=True,
                )
        except CreditProviderError:  # from the rows' source (the vendor) or their checks: already clear
            raise
        except Exception as exc:  # each driver has its own error tree; name the batch it hit
            if (source := batches.source_error) is not None:  # the rows' source failed, not the database
                raise source from source.__cause__  # as it was raised (a driver may have wrapped it)
            raise RowRejectedError(
                f"{self.qualified} rejected a row in the batch from {batches.batch_first} to "
                f"{batches.last} ({type(exc).__name__}: {truncate(str(exc), 300)}). Batches before it "
                "are committed; the cursor has not moved.",
                row_key=batches.last,
            ) from exc
        return batches.count

    def check_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """:meth:`check_row` for many rows: one scan of all their text, then row by row only if needed."""
        cells = self._text_cells
        text = "".join(filter(None, [row[i] for row in rows for i in cells]))
        suspect = self.dialect_name == "mysql" or ("\x00" in text and self.dialect_name == "postgresql")
        if not suspect and not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate somewhere
                suspect = True
        if suspect:
            for row in rows:
                self.check_row(row)

    def check_row(self, row: tuple[Any, ...]) -> None:
        """Fail before writing when a cell cannot be stored exactly in this database."""
        for i in self._text_cells:
            text = row[i]
            if text is None or text.isascii() and "\x00" not in text:
                continue
            column = self.columns[i].name
            if "\x00" in text and self.dialect_name == "postgresql":
                self._reject(row, f"its {column} contains a NUL character, which PostgreSQL text cannot hold")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                self._reject(row, f"its {column} is not valid Unicode (a lone surrogate)")
        if self.dialect_name == "mysql":
            for i in self._amount_cells:
                amount = row[i]
                if amount is not None and not _fits_mysql_decimal(amount):
                    self._reject(
                        row,
                        f"its {self.columns[i].name} {amount} does not fit DECIMAL(65, 30) exactly "
                        f"(at most {_MYSQL_DECIMAL[0]} digits before the point, {_MYSQL_DECIMAL[1]} after)",
                    )

    def row_key(self, row: tuple[Any, ...]) -> str:
        """The row's primary key, for messages."""
        return ", ".join(f"{self.columns[i].name}={row[i]!s}" for i in self._key_cells)

    def _reject(self, row: tuple[Any, ...], why: str) -> None:
        key = self.row_key(row)
        raise RowRejectedError(
            f"Cannot land the row ({key}): {why}. Nothing past it was written.", row_key=key
        )

    def adapt(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """Driver-friendly cells: SQLite gets text for decimals and times (exact, sortable)."""
        if self.dialect_name != "sqlite":
            return row
        return tuple(map(_sqlite_cell, row))

    def insert_ignore_sql(self, columns: Sequence[str] | None = None) -> str:
        """``INSERT`` of ``columns`` (default: all) that does nothing when the row's key exists.

        The statement's row count says whether the row was inserted (1) or already there (0): a unique
        claim, atomic on every database, also between concurrent transactions.
        """
        names = list(columns or self.column_names)
        cols = ", ".join(self._escape(c) for c in names)
        values = ", ".join([self.param()] * len(names))
        return {
            "postgresql": f"INSERT INTO {self.qualified} ({cols}) VALUES ({values}) ON CONFLICT DO NOTHING",
            "mysql": f"INSERT IGNORE INTO {self.qualified} ({cols}) VALUES ({values})",
            "sqlite": f"INSERT OR IGNORE INTO {self.qualified} ({cols}) VALUES ({values})",
        }[self.dialect_name]

    @functools.cached_property
    def upsert_sql(self) -> str:
        """``INSERT`` of one row (all columns, in table order) that replaces the row with its key."""
        names = self.column_names
        cols = ", ".join(self._escape(c) for c in names)
        values = ", ".join([self.param()] * len(names))
        insert = f"INSERT INTO {self.qualified} ({cols}) VALUES ({values})"
        rest = [self._escape(c) for c in names if c not in self.key]
        if self.dialect_name == "mysql":
            return f"{insert} ON DUPLICATE KEY UPDATE {', '.join(f'{c} = VALUES({c})' for c in rest)}"
        key = ", ".join(self._escape(c) for c in self.key)
        return f"{insert} ON CONFLICT ({key}) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in rest)}"

    def param(self) -> str:
        """The driver's bound-parameter placeholder."""
        return str(self.hook.placeholder)

    def where_key(self, columns: Sequence[str]) -> str:
        """``a = ? AND b = ?`` for ``columns``."""
        return " AND ".join(f"{self._escape(c)} = {self.param()}" for c in columns)


class _Batches:
    """Chunks of rows, checked, regrouped into batches of exactly ``batch_size`` rows (the last may be less).

    Iterating yields one batch at a time; a batch is an iterator of chunks, to be consumed before the
    next batch is asked for. It remembers the current batch's first key and the last row given out, to
    name them when the database rejects the batch.
    """

    def __init__(
        self, chunks: Iterable[Sequence[tuple[Any, ...]]], table: WarehouseTable, batch_size: int
    ) -> None:
        self._chunks = iter(chunks)
        self._table = table
        self._batch_size = batch_size
        self._pending: Sequence[tuple[Any, ...]] = ()
        self._last_row: tuple[Any, ...] | None = None
        self.count = 0
        self.batch_first = ""
        #: What the chunks' source raised (the vendor's pages, say): the database did not reject anything.
        self.source_error: Exception | None = None

    def __iter__(self) -> Iterator[Iterator[Sequence[tuple[Any, ...]]]]:
        while self._pending or self._refill():
            yield self._batch()

    def _refill(self) -> bool:
        """Take the next non-empty chunk, checked; ``False`` at the end."""
        while True:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return False
            except Exception as exc:
                self.source_error = exc
                raise
            if chunk:
                self._table.check_rows(chunk)
                self._pending = chunk
                return True

    def _batch(self) -> Iterator[Sequence[tuple[Any, ...]]]:
        room = self._batch_size
        self.batch_first = self._table.row_key(self._pending[0])
        while room and (self._pending or self._refill()):
            part, self._pending = self._pending[:room], self._pending[room:]
            room -= len(part)
            self.count += len(part)
            self._last_row = part[-1]
            yield part

    @property
    def last(self) -> str:
        """The key of the last row given out (the failing batch's last)."""
        return self._table.row_key(self._last_row) if self._last_row is not None else ""


def _chunked(rows: Iterable[tuple[Any, ...]], size: int = 500) -> Iterator[list[tuple[Any, ...]]]:
    """``rows`` in lists of ``size``."""
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def _fits_mysql_decimal(amount: Any) -> bool:
    if not isinstance(amount, Decimal):
        return True
    sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)
    integer_digits = max(0, len(digits) + exponent)
    fraction = -exponent if exponent < 0 else 0
    # Trailing zeros past the 30th decimal are harmless: 1.5000...0 is stored exactly.
    if fraction > _MYSQL_DECIMAL[1]:
        stripped = amount.normalize()
        fraction = max(0, -int(stripped.as_tuple().exponent))
    return amount.is_zero() or (integer_digits <= _MYSQL_DECIMAL[0] and fraction <= _MYSQL_DECIMAL[1])


def _sqlite_cell(cell: Any) -> Any:
    if isinstance(cell, Decimal):
        return f"{cell:f}"
    if hasattr(cell, "isoformat") and hasattr(cell, "hour"):
        return to_naive_utc(cell).isoformat(sep=" ", timespec="microseconds")
    return cell


def to_naive_utc(moment: datetime) -> datetime:
    """A naive datetime in UTC (what TIMESTAMP / DATETIME columns hold by this provider's convention).

    Runs once per landed row: a plain ``datetime`` built from the fields costs a third of
    ``moment.replace(tzinfo=None)`` (keyword parsing makes ``replace`` slow).
    """
    if moment.tzinfo is not None and moment.tzinfo is not timezone.utc and moment.utcoffset():
        moment = moment.astimezone(timezone.utc)  # aware, not UTC
    # Always a plain datetime, never a pendulum one: drivers subtract epochs from it, and pendulum's
    # arithmetic is several times slower (it dominated bulk upserts into PostgreSQL).
    return _naive(
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, moment.microsecond
    )


_naive = datetime


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
    """The vendor's record as compact JSON text (exactly as received: numbers as numbers, Unicode kept).

    Through msgspec (several times faster than ``json.dumps``); a record it cannot encode, such as text
    holding a lone surrogate, through ``json``, so that the row check names the row.
    """
    try:
        return _RAW_ENCODER.encode(record).decode()
    except (TypeError, ValueError, UnicodeError):
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


_RAW_ENCODER = msgspec.json.Encoder(decimal_format="number")
