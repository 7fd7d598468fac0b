"""The searches' studies as figures for the html report: Optuna's own matplotlib plots (the
optimisation history, the parameter importances, the Pareto front of a multi-objective one)."""

from __future__ import annotations

import warnings

from hyperparameter_system.config.settings import Settings
from hyperparameter_system.report.plots import Figure, png_bytes, pyplot


def study_figures(settings: Settings) -> list[Figure]:
    """One figure per plot per study that has complete trials to draw."""
    import optuna  # only when a report draws studies: the CLI starts without Optuna
    from optuna.visualization import matplotlib as ovm

    from hyperparameter_system.run.studies import open_study

    pyplot()  # the Agg backend, before Optuna imports pyplot
    out: list[Figure] = []
    with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
        warnings.simplefilter("ignore")
        for search in settings.searches:
            for model in search.models:
                study = open_study(settings, search, model)
                done = study.get_trials(deepcopy=False,
                                        states=(optuna.trial.TrialState.COMPLETE,))
                if not done:
                    continue
                slug = study.study_name.replace("/", "_")
                if search.multi:
                    names = [key for key, _ in search.objectives]
                    axes = ovm.plot_pareto_front(study, target_names=names[:3])
                    out.append(Figure(f"pareto_{slug}.png", f"{study.study_name}: Pareto front",
                                      f" The trials of {len(done)} complete; the front is the "
                                      "best compromise of " + " and ".join(names) + ".",
                                      png_bytes(axes.figure)))
                    continue
                axes = ovm.plot_optimization_history(study)
                out.append(Figure(f"history_{slug}.png", f"{study.study_name}: optimisation "
                                  "history", f" Each trial's objective and the best so far, "
                                  f"over {len(done)} complete trials.", png_bytes(axes.figure)))
                if len(done) >= 3 and len(search.space) > 1:
                    try:
                        axes = ovm.plot_param_importances(study)
                    except (RuntimeError, ValueError):  # too few distinct values
                        continue
                    out.append(Figure(f"importance_{slug}.png", f"{study.study_name}: "
                                      "parameter importances", " How much each searched key "
                                      "explains of the objective (fANOVA).",
                                      png_bytes(axes.figure)))
    return out
