"""What a launched experiment did, written to its row: where it started, how it ended. Each
write lands only while the runner that gives `owner` still holds the row (claims.owned)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from hyperparameter_system.core.states import Status
from hyperparameter_system.store.claims import owned


@dataclass
class Outcome:
    """How one attempt ended."""

    experiment_id: str
    status: str  # done | failed | timeout | interrupted
    started_at: float
    finished_at: float
    exit_code: int | None = None
    signal: int | None = None
    error: str | None = None
    note: str | None = None  # worth knowing about a success (a batch size halved after OOM)
    log_tail: str = ""
    result: dict[str, Any] | None = None
    config_path: str | None = None
    run_dir: str | None = None
    log_path: str | None = None
    node: str | None = None
    oom: bool = False
    config_error: bool = False  # the script exited 2: its config is wrong, a retry cannot help
    disk_full: bool = False  # it failed for want of space: interrupted, and the run stops
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return round(self.finished_at - self.started_at, 3)


LAUNCH_KEYS = ("config_path", "run_dir", "log_path", "wandb_project", "wandb_name",
               "wandb_run_id", "wandb_mode", "node", "job")


def record_start(db: sqlite3.Connection, exp_id: str, pid: int, launch_info: dict[str, Any],
                 owner: str | None) -> bool:
    """The process is up (Ledger.set_started): its pid and where it writes."""
    values = [launch_info.get(k) for k in LAUNCH_KEYS]
    where, args = owned(exp_id, owner)
    return db.execute(
        f"UPDATE experiments SET pid=?, {', '.join(f'{k}=?' for k in LAUNCH_KEYS)} {where}",
        (pid, *values, *args)).rowcount > 0


def record_finish(db: sqlite3.Connection, exp_id: str, outcome: Outcome, metric: float | None,
                  owner: str | None, batch_override: int | None) -> bool:
    """How an attempt ended (Ledger.finish); an interrupted one gives its attempt back."""
    o = outcome
    result = json.dumps(o.result, default=str) if o.result is not None else None
    wandb = (o.result or {}).get("wandb") or {}
    where, args = owned(exp_id, owner)
    return db.execute(
        "UPDATE experiments SET status=?, finished_at=?, duration_s=?, exit_code=?,"
        " signal=?, error=?, note=?, log_tail=?, metric=?, result_json=?,"
        " config_path=?, run_dir=?, log_path=?, wandb_run_id=COALESCE(?, wandb_run_id),"
        " wandb_dir=?, node=COALESCE(?, node), pid=NULL, pruned_epoch=?,"
        " batch_override=COALESCE(?, batch_override),"
        " attempts=attempts - (CASE WHEN ?='interrupted' THEN 1 ELSE 0 END) " + where,
        (o.status, o.finished_at, o.duration_s, o.exit_code, o.signal, o.error, o.note,
         o.log_tail, metric, result, o.config_path, o.run_dir, o.log_path,
         wandb.get("run_id"), wandb.get("dir"), o.node,
         o.extra.get("pruned_epoch") if o.status == Status.PRUNED else None,
         batch_override, o.status,
         *args)).rowcount > 0
