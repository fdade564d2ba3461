"""Tables of definitions kept by name in the reservation database: budgets and alert rules.

Both are managed the same way (``airflow-credits budgets ...``, ``airflow-credits alerts ...``): set many
in one transaction, read one by name (an unknown name lists the defined ones), list, delete.
"""

from __future__ import annotations

from contextlib import closing
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from airflow_credits_provider.reservations.models import utcnow

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from airflow_credits_provider.sql.tables import WarehouseTable

T = TypeVar("T")


class Definitions(Generic[T]):
    """A table of definitions of type ``T`` keyed by ``name``.

    Subclasses say how a definition is written (:meth:`to_row`) and read (:meth:`from_row`), and how an
    unknown name is reported (:attr:`noun`, :attr:`plural`, :attr:`command`, :attr:`unknown_error`).
    """

    #: "credit budget": what an unknown name is called in the error
    noun: ClassVar[str]
    #: "budgets": what the defined ones are called
    plural: ClassVar[str]
    #: "budgets": the ``airflow-credits`` command group that defines them
    command: ClassVar[str]
    unknown_error: ClassVar[type[Exception]]
    #: the columns :meth:`from_row` reads, in order
    select: ClassVar[tuple[str, ...]]

    def __init__(self, table: WarehouseTable) -> None:
        self.table = table
        self._created = False

    def create(self) -> None:
        """Create the table when missing (once per instance)."""
        if not self._created:
            self.table.create()
            self.create_indexes()
            self._created = True

    def create_indexes(self) -> None:
        """Indexes beyond the primary key (none by default)."""

    def to_row(self, item: T, now: datetime) -> tuple[Any, ...]:
        """``item`` as a row in table column order."""
        raise NotImplementedError

    def from_row(self, row: Sequence[Any]) -> T:
        """A row selected in :attr:`select` order."""
        raise NotImplementedError

    def set(self, items: Sequence[T]) -> None:
        """Create or replace ``items``, all in one transaction (all of them or none)."""
        self.create()
        now = utcnow()
        rows = [self.to_row(item, now) for item in items]
        if rows:
            self.table.upsert(rows, batch_size=max(len(rows), 1))

    def delete(self, name: str) -> bool:
        """Delete the definition ``name``; ``False`` when there was none."""
        self.create()
        t = self.table
        with closing(t.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            cur.execute(f"DELETE FROM {t.qualified} WHERE {t.where_key(('name',))}", (name,))
            deleted = int(cur.rowcount or 0)
            conn.commit()
        return deleted > 0

    def all(self) -> list[T]:
        """Every definition, by name."""
        self.create()
        with closing(self.table.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            return self.read_all(cur)

    def get(self, name: str) -> T:
        """The definition ``name``; :attr:`unknown_error` naming the defined ones when there is none."""
        self.create()
        with closing(self.table.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            return self.read(cur, name)

    def read(self, cur: Any, name: str) -> T:
        """:meth:`get` on an open cursor (inside a reservation's transaction)."""
        t = self.table
        cur.execute(f"SELECT {self.columns()} FROM {t.qualified} WHERE {t.where_key(('name',))}", (name,))
        row = cur.fetchone()
        if row is not None:
            return self.from_row(row)
        cur.execute(f"SELECT {t._escape('name')} FROM {t.qualified} ORDER BY {t._escape('name')}")
        defined = [str(r[0]) for r in cur.fetchall()]
        listed = ", ".join(repr(n) for n in defined[:20]) + (", ..." if len(defined) > 20 else "")
        raise self.unknown_error(
            f"Unknown {self.noun} {name!r}. "
            + (
                f"Defined {self.plural}: {listed}."
                if defined
                else f"No {self.noun.split()[-1]} is defined yet."
            )
            + f" Define it with `airflow-credits {self.command} set` or `{self.command} import`."
        )

    def read_all(self, cur: Any) -> list[T]:
        """Every definition, by name, on an open cursor."""
        t = self.table
        cur.execute(f"SELECT {self.columns()} FROM {t.qualified} ORDER BY {t._escape('name')}")
        return [self.from_row(row) for row in cur.fetchall()]

    def columns(self) -> str:
        """:attr:`select`, escaped."""
        return ", ".join(self.table._escape(c) for c in self.select)
