"""Optuna searches from Python (notebooks, scripts), as the CLI's `--search` runs them.

    from hyperparameter_system import search
    study = search.study("experiment_config.yaml", "lr_wd", "efficientnet_b4.ra2_in1k")
    trial = study.ask(); ...; study.tell(trial, 0.91)   # the real optuna.Study
    search.run_search(search.load("experiment_config.yaml"), "lr_wd", trials=10)
"""

from hyperparameter_system.app.api import load
from hyperparameter_system.app.search_api import run_search, status, study

__all__ = ["load", "run_search", "status", "study"]
