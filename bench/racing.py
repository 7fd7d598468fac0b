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

Part 3 (`--real`): the quickstart raced on the embedded data, and each declared winner checked
against a 6-seed fixed rerun of its pool (minutes on 2 cores).

    .venv/bin/python bench/racing.py [--pools 600] [--options 3] [--min 2] [--max 6] [--e2e]
                                     [--real]
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


def part_three(seeds: int) -> None:
    """The quickstart raced on the embedded data, then every pool with a declared winner rerun
    with `seeds` fixed paired seeds: a winner the rerun contradicts (no gain, or another
    option better) is a false winner."""
    quickstart = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        raced = real_report(quickstart, Path(tmp) / "race", None)
        print("\nthe quickstart under adaptive repeats (embedded data):")
        winners = []
        for model in raced["models"]:
            for table in model["categories"]:
                for o in table["options"]:
                    if o["verdict"] in ("winner", "leading", "undecided"):
                        print(f"  {model['model']} / {table['category']}: {o['run_name']} "
                              f"{o['verdict']} {o['delta']:+.4f} ± {o['half_width'] or 0:.4f} "
                              f"({o['seeds']} seeds)")
                    if o["verdict"] == "winner":
                        winners.append((model["model"], table["category"], o["run_name"]))
        counts: dict[str, int] = {}
        for model in raced["models"]:
            for table in model["categories"]:
                for o in table["options"]:
                    counts[o["verdict"]] = counts.get(o["verdict"], 0) + 1
        print("  verdicts: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
        if not winners:
            print("  no declared winner: nothing for a fixed rerun to contradict")
        for model, category, run_name in winners:
            fixed = real_report(quickstart, Path(tmp) / f"fixed-{model}-{category}", seeds,
                                ["--models", model, "--categories", category])
            option = next(o for m in fixed["models"] for t in m["categories"]
                          for o in t["options"] if o["run_name"] == run_name)
            best = next(t for m in fixed["models"] for t in m["categories"])["options"][0]
            ok = option["delta"] > 0 and best["run_name"] == run_name
            print(f"  {model} / {category}: {run_name} over {seeds} fixed seeds "
                  f"{option['delta']:+.4f} ± {option['half_width'] or 0:.4f} "
                  f"({option['verdict']}): {'confirmed' if ok else 'CONTRADICTED'}")


def real_report(master: dict, folder: Path, fixed: int | None, select: tuple = ()) -> dict:
    """Run the master (its race, or `fixed` seeds) into `folder` and read its json summary."""
    folder.mkdir(parents=True)
    doc = json.loads(json.dumps(master))
    doc["system"].update({"project_root": str(ROOT), "ledger": str(folder / "ledger.db"),
                          "runs_dir": str(folder / "runs"), "wandb_mode": "disabled",
                          "temp_config_dir": str(folder / "temp")})
    if fixed:
        doc["execution"]["repeats"] = fixed
    path = folder / "master.yaml"
    path.write_text(yaml.safe_dump(doc))
    runner = [sys.executable, str(ROOT / "hyperparameter_system" / "experiment_runner.py"),
              "--config", str(path)]
    env = {"WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run([*runner, *(select or ["--all"])], check=True, env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    report = folder / "summary.json"
    subprocess.run([*runner, "--export", "json", str(report)], check=True, env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    return json.loads(report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=600)
    parser.add_argument("--options", type=int, default=3, help="options per pool")
    parser.add_argument("--per-model", type=int, default=3, help="pools per model")
    parser.add_argument("--min", type=int, default=2)
    parser.add_argument("--max", type=int, default=6)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--e2e", action="store_true", help="also race the stand-in script")
    parser.add_argument("--real", action="store_true",
                        help="also race the quickstart on the embedded data (minutes) and "
                             "rerun each pool with a winner on 6 fixed seeds")
    args = parser.parse_args()
    rule = RaceRule(args.min, args.max, args.confidence)
    part_one(args.pools, args.options, rule, args.per_model)
    if args.e2e:
        part_two(rule)
    if args.real:
        part_three(6)


if __name__ == "__main__":
    main()
