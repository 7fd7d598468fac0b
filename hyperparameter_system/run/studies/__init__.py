"""Everything the runner does with Optuna, in one room (Optuna is imported only here, and only
when a study is used: the CLI starts without it).

    storage         the one storage opener (system.optuna_storage; SQLite in WAL, a server
                    retried while two runners create its tables)
    pruners         the pruning rules as Optuna's pruners
    explain         why a trial was pruned, read from what Optuna decided
    pool            PoolPruner: execution.pruning's stopper, one study per (model, category)
    samplers        a search's sampler, built once before launch to check it
    seed_per_trial  SeedPerTrial: a seed that never replays the settings a study holds
    grid            a grid search's points, stopped at the grid's size
    study           a search's study opened: dead runners' trials failed, the space, start
                    configs enqueued
    source          StudySource: a search's study as the executor's source and stopper

Every stopper reads a metrics line through `run.stoppers.monitored`.
"""

from hyperparameter_system.run.studies.pool import PoolPruner, baselines_first
from hyperparameter_system.run.studies.samplers import check_sampler, grid_size, make_sampler
from hyperparameter_system.run.studies.source import StudySource
from hyperparameter_system.run.studies.storage import open_storage
from hyperparameter_system.run.studies.study import (
    ASKING,
    ATTR,
    Opened,
    complete,
    counts,
    distributions,
    enqueue,
    experiment_of,
    finished,
    importances,
    open_opened,
    open_study,
)

__all__ = ["ASKING", "ATTR", "Opened", "PoolPruner", "StudySource", "baselines_first",
           "check_sampler", "complete", "counts", "distributions", "enqueue",
           "experiment_of", "finished", "grid_size", "importances", "make_sampler",
           "open_opened", "open_storage", "open_study"]
