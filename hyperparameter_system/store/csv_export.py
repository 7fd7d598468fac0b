"""The ledger as CSV: the original system's experiment_results_extended.csv columns first, so
its readers keep working, then every ledger column."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence

from hyperparameter_system.core.states import Status
from hyperparameter_system.store.row import COLUMNS, Row

LEGACY_CSV = ("experiment_id", "model_name", "category", "option", "status", "start_time",
              "error_message", "config_path", "execution_time", "f1_score", "accuracy",
              "stdout_sample")


def csv_text(rows: Sequence[Row]) -> str:
    """These rows as CSV text, one line each under the header."""
    fh = io.StringIO(newline="")
    writer = csv.writer(fh)
    extra = [k for k in COLUMNS if k not in LEGACY_CSV]  # no duplicate headers
    writer.writerow([*LEGACY_CSV, *extra])
    for r in rows:
        metrics = r.result.get("metrics", {})
        legacy = (r.id, r.model, r.category, r.option_json, _legacy_status(r.status),
                  _iso(r.started_at), r.error, r.config_path, r.duration_s,
                  metrics.get("best_val_f1"), metrics.get("final_val_acc"),
                  (r.log_tail or "")[-200:])
        writer.writerow([*legacy, *(getattr(r, k) for k in extra)])
    return fh.getvalue()


def _legacy_status(status: str | None) -> str | None:
    return "completed" if status == Status.DONE else status


def _iso(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts)) if ts else None
