"""Racing seeds (matrix/racing.py): how often it declares a false winner, how often it finds a
real one, and the seeds it spends, against fixed repeats (every option `max` seeds) and against
single runs (one seed each, the best option beating the baseline wins: the old verdicts).
Prints figures; asserts nothing.

Part 1, simulated pools (no training): each option's score on seed k is
    true_mean + shared_k + independent_ok
with shared_k (the seed's effect on every option: split, order; pairing cancels it) and an
independent part, each of variance 1/2, so one run's seed-to-seed sd is 1 (the "noise sd").
Null pools: every option equals the baseline. Effect pools: one option is better by 1 or 2 sd.
A model has several pools (categories) sharing its baseline, and the noise is pooled over them,
as the runner does; each pool's verdict counts.

Part 2, end to end (`--e2e`): the real runner races a stand-in script (tests/fakes/
fake_train.py with `fake.noise`) whose scores have known means and seeded noise; prints each
option's verdict and seeds next to what the simulation predicts.

    .venv/bin/python bench/racing.py [--pools 400] [--options 3] [--min 2] [--max 6] [--e2e]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hyperparameter_system.matrix.racing import (  # noqa: E402
    Arm,
    RaceRule,
    judge,
    squares,
)

BETTER = "better"  # the name of the option that is truly better in an effect pool


def simulate(effect: float, options: int, rule: RaceRule, rng: random.Random,
             fixed: int | None = None, pools: int = 3) -> tuple[list[str | None], int]:
    """One model's `pools` pools (categories) sharing its baseline, raced (or run with `fixed`
    seeds each) with the noise pooled over the model as the runner does: (each pool's declared
    winner, seeds used, the baseline's included)."""
    names = [BETTER] + [f"o{i}" for i in range(1, options)]
    means = {n: 0.0 for n in names} | {BETTER: effect}
    shared: list[float] = []
    base: dict[int, float] = {}
    runs = [{n: {} for n in names} for _ in range(pools)]

    def run(pool: int, name: str, k: int) -> None:
        while len(shared) <= k:
            shared.append(rng.gauss(0, 0.5 ** 0.5))
            base[len(shared) - 1] = shared[-1] + rng.gauss(0, 0.5 ** 0.5)
        runs[pool][name][k] = means[name] + shared[k] + rng.gauss(0, 0.5 ** 0.5)

    for p in range(pools):
        for name in names:
            for k in range(fixed or rule.min_seeds):
                run(p, name, k)
    look = RaceRule(fixed, fixed, rule.confidence) if fixed else rule
    while True:
        arms = [{n: Arm(r) for n, r in pool.items()} for pool in runs]
        sums = [squares(base, a) for a in arms]
        pooled = (sum(ss for ss, _ in sums), sum(df for _, df in sums))
        judged = [judge(base, a, look, pooled) for a in arms]
        wanting = [(p, n) for p, pool in enumerate(judged)
                   for n, j in pool.judgements.items() if j.wants]
        if not wanting or fixed:
            return [pool.winner for pool in judged], len(base) + sum(
                len(r) for pool in runs for r in pool.values())
        for p, name in wanting:
            run(p, name, len(runs[p][name]))


def single_run(effect: float, options: int, rng: random.Random) -> str | None:
    """Today's verdict from one run each: the best option wins when it beats the baseline."""
    shared = rng.gauss(0, 0.5 ** 0.5)
    base = shared + rng.gauss(0, 0.5 ** 0.5)
    scores = {f"o{i}": shared + rng.gauss(0, 0.5 ** 0.5) for i in range(1, options)}
    scores[BETTER] = effect + shared + rng.gauss(0, 0.5 ** 0.5)
    best = max(scores, key=scores.__getitem__)
    return best if scores[best] > base else None


def part_one(pools: int, options: int, rule: RaceRule, per_model: int) -> None:
    print(f"simulated pools: {options} options each, {per_model} pools per model sharing its "
          f"baseline, seeds {rule.min_seeds}..{rule.max_seeds}, confidence {rule.confidence}, "
          f"{pools} pools per row")
    print(f"{'pool kind':<16}{'method':<20}{'winner declared':>16}{'right winner':>14}"
          f"{'seeds / fixed max':>20}")
    fixed_seeds = (options * per_model + 1) * rule.max_seeds
    for label, effect in (("null", 0.0), ("better by 1 sd", 1.0), ("better by 2 sd", 2.0)):
        rng = random.Random(7)
        rows: dict[str, list[tuple[list[str | None], int]]] = {
            "race": [], f"fixed {rule.max_seeds} seeds": [], "single run": []}
        for _ in range(max(1, pools // per_model)):
            rows["race"].append(simulate(effect, options, rule, rng, pools=per_model))
            rows[f"fixed {rule.max_seeds} seeds"].append(
                simulate(effect, options, rule, rng, fixed=rule.max_seeds, pools=per_model))
            rows["single run"].append(([single_run(effect, options, rng)
                                        for _ in range(per_model)], options * per_model + 1))
        for method, results in rows.items():
            verdicts = [w for ws, _ in results for w in ws]
            declared = sum(w is not None for w in verdicts) / len(verdicts)
            right = sum(w == BETTER for w in verdicts) / len(verdicts)
            seeds = sum(s for _, s in results) / len(results) / fixed_seeds
            right_text = "-" if effect == 0 else f"{right:.1%}"
            print(f"{label:<16}{method:<20}{declared:>16.1%}{right_text:>14}{seeds:>20.2f}")
    print("targets: null pools declare a winner in <= 5% (race); the 2 sd option is found in "
          ">= 90%; the race spends <= 0.5 of fixed repeats = max")


def part_two(rule: RaceRule) -> None:
    """The real runner on the stand-in script; its verdicts next to the simulation's."""
    means = {"baseline": 0.50, "clear": 0.60, "worse": 0.40, "same": 0.50, "close": 0.51,
             "closer": 0.505}
    with tempfile.TemporaryDirectory() as tmp:
        master = Path(tmp) / "race.yaml"
        master.write_text(yaml.safe_dump(race_master(Path(tmp), means, rule)))
        runner = [sys.executable, str(ROOT / "hyperparameter_system" / "experiment_runner.py"),
                  "--config", str(master)]
        env = {"WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
        subprocess.run([*runner, "--all"], check=True, env=env, stdout=subprocess.DEVNULL)
        report = Path(tmp) / "race.json"
        subprocess.run([*runner, "--export", "json", str(report)], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        data = json.loads(report.read_text())
    print("\nend to end: the runner racing tests/fakes/fake_train.py (true means "
          + ", ".join(f"{k} {v}" for k, v in means.items()) + ", seed sd 0.02)")
    for model in data["models"]:
        for table in model["categories"]:
            for option in table["options"]:
                print(f"  {option['description']:<8} verdict {option['verdict']:<22} seeds "
                      f"{option['seeds']}  delta {option['delta']:+.4f} "
                      f"+- {option['half_width'] or 0:.4f}")
    print("  simulation predicts: clear -> winner at min seeds; worse -> raced out; same -> "
          "identical to baseline; close, closer (0.5 and 0.25 sd) -> more seeds, then undecided")


def race_master(tmp: Path, means: dict[str, float], rule: RaceRule) -> dict:
    options = [{"fake.metric": m, "description": n} for n, m in means.items() if n != "baseline"]
    subtle = ("close", "closer")
    return {
        "system": {"project_root": str(ROOT), "base_config": "tests/fakes/base.yaml",
                   "temp_config_dir": str(tmp / "temp"), "ledger": str(tmp / "ledger.db"),
                   "runs_dir": str(tmp / "runs"), "reports_dir": str(tmp / "reports"),
                   "wandb_mode": "disabled", "metric": "metrics.best_val_f1",
                   "overrides": [f"fake.metric={means['baseline']}", "+fake.noise=0.02"]},
        "models": [{"name": "stand-in", "script": "python tests/fakes/fake_train.py"}],
        "experiment_categories": {
            "knob": {"options": [o for o in options if o["description"] not in subtle]},
            "subtle": {"options": [o for o in options if o["description"] in subtle]}},
        "execution": {"max_parallel": 2, "repeats": {
            "min": rule.min_seeds, "max": rule.max_seeds, "confidence": rule.confidence}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=400)
    parser.add_argument("--options", type=int, default=3, help="options per pool")
    parser.add_argument("--per-model", type=int, default=3, help="pools per model")
    parser.add_argument("--min", type=int, default=2)
    parser.add_argument("--max", type=int, default=6)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--e2e", action="store_true", help="also race the stand-in script")
    args = parser.parse_args()
    rule = RaceRule(args.min, args.max, args.confidence)
    part_one(args.pools, args.options, rule, args.per_model)
    if args.e2e:
        part_two(rule)


if __name__ == "__main__":
    main()
