"""Optuna search figures: best value against trials for TPE and random sampling on the stand-in
landscape (tests/fakes/landscape_train.py, median over seeds); distinct settings per finished
trial once a seeded search is resumed and joined by a second worker (target 1.0, against a
sampler seeded once as Optuna's samplers are); and the wall-clock time the runner adds per
trial over a bare launch of the same trivial script (target: < 50 ms).
Prints figures; asserts nothing.

    .venv/bin/python bench/search.py [--trials 40] [--seeds 5] [--n 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fakes"))

from landscape_train import score  # noqa: E402
from runner_overhead import TRIVIAL  # noqa: E402 - the same trivial script, beside it

from hyperparameter_system.app import api  # noqa: E402
from hyperparameter_system.app.search_api import get_search, run_search, study  # noqa: E402
from hyperparameter_system.run.studies import distributions  # noqa: E402
from hyperparameter_system.run.studies.seed_per_trial import SeedPerTrial  # noqa: E402

CHECKPOINTS = (5, 10, 20, 40, 80)


def landscape(trials: int, seeds: int) -> None:
    """Best score after k trials, median over seeds, on the stand-in's known landscape."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    marks = [k for k in CHECKPOINTS if k <= trials]
    print(f"best value vs trials on the stand-in landscape (optimum {score({'lr': 10**-2.5}):.4f}"
          f"), median of {seeds} seeds:")
    print("  sampler  " + "".join(f"{k:>9}" for k in marks))
    for name, make in (("tpe", optuna.samplers.TPESampler),
                       ("tpe/trial", _tpe_per_trial),  # as the runner seeds it
                       ("random", optuna.samplers.RandomSampler)):
        curves = []
        for seed in range(seeds):
            study = optuna.create_study(direction="maximize", sampler=make(seed=seed))

            def objective(trial: optuna.Trial) -> float:
                return score({"lr": trial.suggest_float("lr", 1e-5, 1e-1, log=True),
                              "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2,
                                                                  log=True),
                              "optimizer_name": trial.suggest_categorical(
                                  "optimizer_name", ["AdamW", "SGD"])})

            study.optimize(objective, n_trials=trials)
            values = [t.value for t in study.trials]
            curves.append([max(values[:k]) for k in marks])
        medians = [statistics.median(c[i] for c in curves) for i in range(len(marks))]
        print(f"  {name:<8} " + "".join(f"{m:9.4f}" for m in medians))


def repeats(third: int) -> None:
    """A seeded search in three parts on one SQLite study: `third` trials, as many again
    resumed, then two workers asking in turn (each its own sampler, as two runners have to
    4 x third); the runner's sampler against the same sampler seeded once.
    Figure: distinct params / finished trials."""
    print(f"distinct settings / finished trials, seed 5, {third} trials, then {third} resumed, "
          f"then two workers to {4 * third} (target 1.0):")
    for name in ("tpe", "random"):
        runner, once = _shares(name, third)
        print(f"  {name:<8} runner {runner:.3f}   seeded once {once:.3f}")


def _shares(name: str, third: int) -> tuple[float, float]:
    """(the runner's sampler, the sampler seeded once) on one study storage each."""
    with tempfile.TemporaryDirectory() as folder:
        settings = _search_settings(Path(folder), name)
        dists = distributions(get_search(settings, "s"))
        url = settings.system.optuna_storage
        runner = _distinct(lambda: study(settings, "s"), dists, third)
        once = _distinct(lambda: optuna.create_study(
            storage=url, study_name="s/once", direction="maximize",
            sampler=_seeded_once(name), load_if_exists=True), dists, third)
    return runner, once


def _tpe_per_trial(seed: int) -> optuna.samplers.BaseSampler:
    return SeedPerTrial(lambda s: optuna.samplers.TPESampler(seed=s), seed)


def _seeded_once(name: str) -> optuna.samplers.BaseSampler:
    cls = optuna.samplers.TPESampler if name == "tpe" else optuna.samplers.RandomSampler
    return cls(seed=5)


def _distinct(open_study: Callable[[], optuna.Study], dists: dict, third: int) -> float:
    """Run, resume, then two workers in turn; the share of distinct params among the trials."""
    _ask_tell(open_study(), dists, third)
    _ask_tell(open_study(), dists, third)
    one, two = open_study(), open_study()
    for _ in range(third):
        _ask_tell(one, dists, 1)
        _ask_tell(two, dists, 1)
    seen = [tuple(sorted(t.params.items())) for t in one.get_trials()]
    return len(set(seen)) / len(seen)


def _ask_tell(study_: optuna.Study, dists: dict, count: int) -> None:
    for _ in range(count):
        trial = study_.ask(dists)
        study_.tell(trial, score(trial.params))


def _search_settings(tmp: Path, sampler: str):  # noqa: ANN202 - Settings
    doc = {"system": {"project_root": str(ROOT), "base_config": "tests/fakes/base.yaml",
                      "temp_config_dir": str(tmp / "tc"), "ledger": str(tmp / "l.db"),
                      "runs_dir": str(tmp / "runs"), "wandb_mode": "disabled"},
           "models": [{"name": "bench", "script": "python tests/fakes/landscape_train.py"}],
           "experiment_categories": {"early_stopping": {"options": [{"patience": 1}]}},
           "search": {"s": {"sampler": sampler, "seed": 5, "space": {
               "lr": {"low": 1e-5, "high": 1e-1, "log": True},
               "weight_decay": {"low": 1e-6, "high": 1e-2, "log": True}}}}}
    path = tmp / "master.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return api.load(path)


def overhead(n: int) -> None:
    """A search of n trials of a trivial script on one slot, against n bare launches."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        script = tmp / "trivial.sh"
        script.write_text(TRIVIAL)
        script.chmod(0o755)
        doc = {"system": {"project_root": str(ROOT), "base_config": "tests/fakes/base.yaml",
                          "temp_config_dir": str(tmp / "tc"), "ledger": str(tmp / "l.db"),
                          "runs_dir": str(tmp / "runs"), "wandb_mode": "disabled"},
               "models": [{"name": "bench", "script": str(script),
                           "schema": "codes/train.schema.json"}],
               "experiment_categories": {"early_stopping": {"options": [{"patience": 1}]}},
               "execution": {"max_parallel": 1, "gpus": "none", "heartbeat_s": 5},
               "search": {"s": {"n_trials": n, "sampler": "random", "seed": 0,
                                "space": {"lr": {"low": 1e-5, "high": 1e-1, "log": True}}}}}
        path = tmp / "master.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        run_dir = tmp / "direct"
        run_dir.mkdir()
        env = {**os.environ, "HPSYS_RUN_DIR": str(run_dir)}
        bare = []
        for _ in range(n):
            began = time.perf_counter()
            subprocess.run([str(script)], cwd=ROOT, env=env, check=True)
            bare.append(time.perf_counter() - began)
        settings = api.load(path)
        stamps: list[float] = []
        began = time.perf_counter()
        result = run_search(settings, "s", display=lambda left, slots: Stamps(stamps))
        wall = time.perf_counter() - began
    done = sum(o.status == "done" for o in result.outcomes)
    cycles = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    per_trial, launch = statistics.median(cycles), statistics.median(bare)
    print(f"runner overhead per trial, {done} trials of a trivial script on one slot:")
    print(f"  bare launch             median {launch * 1e3:7.2f} ms")
    print(f"  trial to trial          median {per_trial * 1e3:7.2f} ms (ask, ledger row, temp "
          "config, launch, result, tell; SQLite study)")
    print(f"  added per trial         median {(per_trial - launch) * 1e3:7.2f} ms "
          "(target < 50 ms)")
    print(f"  whole search            {wall:.2f} s, opening the study (import optuna, "
          f"schema) {stamps[0] - began:.2f} s of it, once per search")


class Stamps:
    """A display that only notes when each trial finished."""

    def __init__(self, times: list[float]) -> None:
        self.times = times

    def __enter__(self) -> Stamps:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def finished(self, experiment: object, outcome: object, final: bool = True) -> None:
        self.times.append(time.perf_counter())

    def started(self, *args: object) -> None: ...

    def refresh(self) -> None: ...

    def message(self, text: str) -> None: ...


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--n", type=int, default=60, help="trials for the overhead figure")
    args = parser.parse_args()
    landscape(args.trials, args.seeds)
    repeats(3)  # the story: 3 trials, --trials 6, then two workers to 12
    repeats(args.trials)
    overhead(args.n)


if __name__ == "__main__":
    main()
