"""How many seeds each option runs: `execution.repeats` (a count, or adaptive: a race of
seeds), `execution.budget` and `execution.combine_leaders`."""

from __future__ import annotations

from dataclasses import dataclass

from hyperparameter_system.config.reader import Reader
from hyperparameter_system.core.durations import parse_duration
from hyperparameter_system.core.errors import HpsysError

RACE_KEYS = {"min": (int,), "max": (int,), "confidence": (int, float)}


@dataclass(frozen=True)
class RaceRule:
    """Seeds per option: `min_seeds` for all, up to `max_seeds` where undecided; verdicts at
    `confidence` over all the looks (matrix/racing.py)."""

    min_seeds: int = 2
    max_seeds: int = 6
    confidence: float = 0.95

    @property
    def looks(self) -> int:
        return self.max_seeds - self.min_seeds + 1

    @property
    def level(self) -> float:
        """The two-sided level of one look (Bonferroni over the planned looks)."""
        return (1 - self.confidence) / self.looks


def read_repeats(reader: Reader) -> tuple[int, RaceRule | None]:
    """(seeds per option in the matrix, the race or None): `repeats: 3` runs 3 seeds of every
    option; `repeats: {min, max, confidence}` races them, the matrix holding `max`."""
    value = reader.get("repeats", 1)
    if not isinstance(value, dict):
        return reader.number("repeats", 1, 1), None
    race = Reader(reader.doc, (*reader.path, "repeats"), value, RACE_KEYS)
    low, high = race.number("min", 2, 2), race.number("max", 6, 2)
    if low > high:
        raise HpsysError(race.where("min"), f"expected min <= max, got min {low} > max {high}")
    confidence = race.get("confidence", 0.95)
    if not 0.5 < confidence < 1:
        raise HpsysError(race.where("confidence"),
                         f"expected a level in (0.5, 1) such as 0.95, got {confidence!r}")
    return high, RaceRule(low, high, float(confidence))


def read_budget(reader: Reader) -> float | None:
    """`execution.budget`: seconds (from `8h`, `90m`, ...), or None for no budget."""
    value = reader.get("budget")
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise HpsysError(reader.where("budget"), str(exc)) from None
