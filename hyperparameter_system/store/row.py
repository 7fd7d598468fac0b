"""One ledger row as a typed record. Its fields are the experiments table: COLUMNS (the table
the ledger creates and migrates to) is read off them, so a column is declared once."""

from __future__ import annotations

import json
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

from hyperparameter_system.core.states import Status

STATUSES = tuple(Status)  # stored as their values, as they always were

SQLITE = "sqlite"  # a field's metadata key: what its column declares beyond its type
SQLITE_TYPES = {str: "TEXT", int: "INTEGER", float: "REAL"}


@dataclass(frozen=True)
class Row:
    """One ledger row, with the parsed JSON columns at hand. A hand-edited cell (`duration_s=
    'x'`: SQLite keeps text in a number column as text) is read as missing and told in
    `problems`, not a traceback in the report."""

    id: str = field(metadata={SQLITE: "PRIMARY KEY"})
    model: str | None = None
    project: str | None = None
    category: str | None = None
    option_json: str | None = None
    label: str | None = None
    run_name: str | None = None
    repeat: int | None = None
    changes_json: str | None = None
    config_json: str | None = None
    script: str | None = None
    status: str | None = None
    attempts: int | None = field(default=None, metadata={SQLITE: "DEFAULT 0"})
    owner: str | None = None
    host: str | None = None
    pid: int | None = None
    heartbeat: float | None = None
    node: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    error: str | None = None
    log_tail: str | None = None
    metric: float | None = None
    result_json: str | None = None
    config_path: str | None = None
    run_dir: str | None = None
    log_path: str | None = None
    wandb_project: str | None = None
    wandb_name: str | None = None
    wandb_run_id: str | None = None
    wandb_mode: str | None = None
    wandb_dir: str | None = None
    launches: int | None = field(default=None, metadata={SQLITE: "DEFAULT 0"})
    batch_override: int | None = None
    note: str | None = None
    pruned_epoch: int | None = None  # the epoch a pruner stopped it at (its reason is the note)
    job: str | None = None  # a scheduler's job id (Slurm), found again by the next runner

    @classmethod
    def from_columns(cls, values: Mapping[str, Any]) -> Row:
        """The row of a table read (`SELECT *`): a column this runner does not know is left
        out, one it does not hold reads as missing."""
        return cls(**{name: value for name, value in values.items() if name in COLUMNS})

    def __post_init__(self) -> None:
        object.__setattr__(self, "_problems", [])
        for name in NUMBER_COLUMNS:
            value = getattr(self, name)
            if isinstance(value, str | bytes):
                object.__setattr__(self, name, None)
                self._problem(name, value, "not a number")

    def _problem(self, column: str, value: Any, what: str) -> None:
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:37]}..."
        self._problems.append(f"ledger row {self.id}: {column} {shown} is {what}; "
                              "read as missing")

    def _json(self, column: str) -> dict[str, Any]:
        text = getattr(self, column)
        if not text:
            return {}
        try:
            value = json.loads(text)
        except (ValueError, TypeError):
            value = None
        if not isinstance(value, dict):
            self._problem(column, text, "not a JSON object")
            return {}
        return value

    # parsed once per row: a report reads each row's result several times over
    @cached_property
    def option(self) -> dict[str, Any]:
        return self._json("option_json")

    @cached_property
    def result(self) -> dict[str, Any]:
        return self._json("result_json")

    @cached_property
    def config(self) -> dict[str, Any]:
        return self._json("config_json")

    @property
    def problems(self) -> list[str]:
        """The unreadable cells of this row, each read as missing: for the report to warn."""
        _ = self.option, self.result, self.config  # parse each: a bad one adds its problem
        return list(self._problems)


def _column_type(hint: Any) -> type:
    """The one type of a field (`int | None` -> int)."""
    return next(t for t in typing.get_args(hint) or (hint,) if t is not type(None))


_HINTS = typing.get_type_hints(Row)
_TYPES = {f.name: _column_type(_HINTS[f.name]) for f in fields(Row)}
COLUMNS = {  # name -> its declaration in CREATE TABLE, in the table's order
    f.name: " ".join([SQLITE_TYPES[_TYPES[f.name]], *filter(None, [f.metadata.get(SQLITE)])])
    for f in fields(Row)}
NUMBER_COLUMNS = tuple(name for name, kind in _TYPES.items() if kind in (int, float))


def row_problems(rows: Iterable[Row]) -> list[str]:
    """Every unreadable cell of these rows, one line each, naming the row's id."""
    return [problem for row in rows for problem in row.problems]
