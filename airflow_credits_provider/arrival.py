"""When have credits *arrived*: the once-per-crossing rule behind ``CreditsAvailableTrigger``. No I/O.

A watcher sees a stream of balances and must fire once when credits arrive, not on every poll while
they stay there. :class:`ArrivalRule` is that rule, in one of two forms:

- **threshold**: fire when ``available`` rises from below ``threshold`` to ``threshold`` or more.
  While it stays at or above, nothing more fires; once it drops below, the next rise fires again.
- **rise_by**: fire when ``available`` is ``rise_by`` or more above the lowest balance seen since the
  last firing (or since watching began): a monthly reset or a top-up, however the polls fall. The
  balance at the firing becomes the new low.

What the watcher has seen is a :class:`WatchState`, small and JSON-friendly, so that it can be kept
across restarts (Airflow 3.3's asset state store).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class WatchState:
    """What a watcher has seen: the last balance, whether it was at the threshold, the lowest since firing."""

    last: Decimal
    above: bool
    low: Decimal

    def to_json(self) -> dict[str, Any]:
        """Exact decimal strings, for a state store."""
        return {"last": str(self.last), "above": self.above, "low": str(self.low)}

    @classmethod
    def from_json(cls, data: Any) -> WatchState | None:
        """Read :meth:`to_json`'s output back; anything else (nothing stored, a foreign value) is ``None``."""
        try:
            return cls(Decimal(data["last"]), bool(data["above"]), Decimal(data["low"]))
        except (TypeError, KeyError, ArithmeticError, ValueError):
            return None


@dataclass(frozen=True)
class ArrivalRule:
    """Fire once per crossing of ``threshold``, or once per rise of ``rise_by`` (exactly one of them).

    :param fire_on_start: with ``threshold``, also fire when the very first balance seen (no stored
        state) is already at or above it; by default the first balance only sets the starting point
    """

    threshold: Decimal | None = None
    rise_by: Decimal | None = None
    fire_on_start: bool = False

    def __post_init__(self) -> None:
        if (self.threshold is None) == (self.rise_by is None):
            raise ValueError("Give exactly one of threshold (credits) or rise_by (credits added).")
        if self.rise_by is not None and self.rise_by <= 0:
            raise ValueError(f"rise_by must be more than 0 credits, got {self.rise_by}.")
        if self.rise_by is not None and self.fire_on_start:
            raise ValueError("fire_on_start applies to threshold only: a rise needs a balance to rise from.")

    def observe(self, state: WatchState | None, available: Decimal) -> tuple[bool, WatchState]:
        """Whether ``available`` (after ``state``) is an arrival, and the state after it."""
        above = self.threshold is not None and available >= self.threshold
        if state is None:
            fired = above and self.fire_on_start
            return fired, WatchState(available, above, available)
        if self.threshold is not None:
            fired = above and not state.above
            return fired, WatchState(available, above, min(state.low, available))
        assert self.rise_by is not None
        if available - state.low >= self.rise_by:
            return True, WatchState(available, above, available)
        return False, WatchState(available, above, min(state.low, available))

    def describe(self) -> str:
        """``"reach 5000 credits"`` / ``"rise by 1000 credits"``."""
        if self.threshold is not None:
            return f"reach {self.threshold.normalize():f} credits"
        assert self.rise_by is not None
        return f"rise by {self.rise_by.normalize():f} credits"
