"""Exact sums of amounts in SQL, SQLite included.

PostgreSQL and MySQL/MariaDB store amounts as ``DECIMAL`` and sum them exactly. SQLite stores them as
exact text (``"85.36"``) but computes in binary floating point, so ``SUM`` over a month of snapshots comes
back as ``85.35999999999989``. There the amounts are summed as integers instead, in units of the
smallest decimal place any of them has: ``CAST(ROUND(CAST(x AS REAL) * 10^digits) AS INTEGER)`` is the
amount's exact integer count of units while ``|x| * 10^digits`` stays below 2^52 (the double nearest
the text is then less than half a unit away), and SQLite sums integers exactly, raising on 64-bit
overflow rather than losing digits. :func:`amount_scale` reads the digits and the largest amount from
the rows a query will sum and says whether that holds; where it does not (amounts with more than
about 15 significant digits), the query sums in floating point and the figure keeps 15 digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.parsing import exact_arithmetic

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Integers below this are exact in a double with room for a half-unit error: 2^52.
_EXACT_INTEGER = 2**52
#: SQLite's integer sums raise above this: 2^63 - 1.
_SUM_LIMIT = 2**63 - 1


@dataclass(frozen=True)
class AmountScale:
    """How a query reads amounts so that its sums are exact.

    :param digits: decimal places of the units summed (``None``: the database sums decimals itself,
        or, on SQLite, the amounts are too long to sum in integer units and floats are summed)
    :param sqlite: the database is SQLite (amounts stored as text)
    """

    digits: int | None = None
    sqlite: bool = False

    def expr(self, column: str) -> str:
        """``column`` as the query should sum it."""
        if not self.sqlite:
            return column
        if self.digits is None:
            return f"CAST({column} AS REAL)"
        return f"CAST(ROUND(CAST({column} AS REAL) * {10**self.digits}) AS INTEGER)"

    def value(self, cell: Any) -> Decimal:
        """A cell the query computed from :meth:`expr` values, as an exact decimal (``NULL``: 0)."""
        if cell is None:
            return Decimal(0)
        if isinstance(cell, Decimal):
            return cell
        if isinstance(cell, int) and self.digits is not None:
            with exact_arithmetic():
                return Decimal(cell).scaleb(-self.digits)
        if isinstance(cell, float):  # floating point on SQLite: keep its 15 exact digits
            return Decimal(format(cell, ".15g"))
        return Decimal(str(cell))


#: What every database but SQLite needs: nothing.
DECIMAL_SUMS = AmountScale()


def amount_scale(
    hook: Any, dialect: str, source: str, columns: Sequence[str], where: str, parameters: Sequence[Any]
) -> AmountScale:
    """The scale that sums ``columns`` of the rows ``SELECT ... FROM source WHERE where`` exactly.

    One query on SQLite (the longest fraction, the largest amount and the row count), none elsewhere.
    """
    if dialect != "sqlite":
        return DECIMAL_SUMS
    parts = []
    for column in columns:
        text = f"CAST({column} AS TEXT)"
        parts.append(
            f"MAX(CASE WHEN INSTR({text}, '.') > 0 THEN LENGTH({text}) - INSTR({text}, '.') ELSE 0 END)"
        )
        parts.append(f"MAX(ABS(CAST({column} AS REAL)))")
    row = hook.get_first(f"SELECT COUNT(*), {', '.join(parts)} FROM {source} WHERE {where}", parameters)
    if not row or not row[0]:
        return AmountScale(0, sqlite=True)
    count = int(row[0])
    digits = max(int(d or 0) for d in row[1::2])
    largest = max(float(a or 0) for a in row[2::2]) * 10**digits
    if largest >= _EXACT_INTEGER or largest * count * 2 >= _SUM_LIMIT:  # drops sum differences: x2
        return AmountScale(None, sqlite=True)
    return AmountScale(digits, sqlite=True)
