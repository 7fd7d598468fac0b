"""The one way the runner opens Optuna's storage: `system.optuna_storage` (its default, a
SQLite file beside the runs, is the settings' alone), for pruning pools and searches alike."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import optuna

from hyperparameter_system.config.settings import Settings
from hyperparameter_system.core.errors import HpsysError

optuna.logging.set_verbosity(optuna.logging.WARNING)  # the runner's display says what happens


def open_storage(settings: Settings) -> optuna.storages.BaseStorage:
    """The study storage of `settings`, opened before anything launches: a URL that cannot be
    opened is bad input at system.optuna_storage, one line.

    A SQLite file runs in WAL mode with normal syncing: each ask and tell is a commit, and a
    full fsync per commit would cost more than the trial's own launch. A server (PostgreSQL)
    may be met fresh by two runners at once: both create Optuna's tables, and the one that
    loses that race retries and finds them made.

    Example:
        storage = open_storage(settings)
        study = optuna.load_study(study_name="lr_wd/land", storage=storage)
    """
    url = settings.system.optuna_storage
    try:
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            return _sqlite(url)
        return _server(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy, OSError, ValueError alike
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HpsysError(f"{settings.path}: system.optuna_storage",
                         f"cannot open the study storage {url}: {first}") from None


def _sqlite(url: str) -> optuna.storages.BaseStorage:
    from sqlalchemy import event

    rdb = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})

    def pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(rdb.engine, "connect", pragmas)
    rdb.engine.dispose()  # connections opened while creating the schema go: new ones get them
    return rdb


def _server(url: str, tries: int = 5) -> optuna.storages.BaseStorage:
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(tries):
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=None)
        except SQLAlchemyError:
            if attempt == tries - 1:
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")
