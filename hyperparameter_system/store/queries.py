"""Reading rows off the ledger's table: what every report, plan and estimate starts from."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from hyperparameter_system.store.row import Row


def read_rows(db: sqlite3.Connection, status: str | None = None) -> list[Row]:
    """Every row (of one `status`, when given), in the table's order."""
    return [Row.from_columns(dict(r)) for r in db.execute(
        "SELECT * FROM experiments" + (" WHERE status=?" if status else ""),
        (status,) if status else ())]


def in_order(found: list[Row], ids: Iterable[str] | None) -> list[Row]:
    """The rows of `ids` in their order (an unknown id left out); without ids, every row in
    the order it was recorded."""
    if ids is None:
        return sorted(found, key=lambda r: (r.created_at or 0, r.id))
    by_id = {r.id: r for r in found}
    return [by_id[i] for i in ids if i in by_id]
