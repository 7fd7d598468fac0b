"""Racing seeds (issue 18): the verdicts of matrix/racing.py on known pools, and the race run
through the real runner on the fake trainer, whose `fake.noise` gives each seed a known,
seeded score (a shared part every option has, and one of its own)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hyperparameter_system.config.racing import RaceRule
from hyperparameter_system.matrix.racing import (
    IDENTICAL,
    LEADING,
    RACED_OUT,
    UNDECIDED,
    WINNER,
    Arm,
    holm,
    judge,
)

ROOT = Path(__file__).resolve().parents[1]
RUNNER = (sys.executable, str(ROOT / "hyperparameter_system" / "experiment_runner.py"))
RULE = RaceRule(2, 6, 0.95)


def _pool(effects: dict[str, float], seeds: int, rng: random.Random, sd: float = 1.0):
    shared = [rng.gauss(0, sd / 2 ** 0.5) for _ in range(seeds)]
    base = {k: shared[k] + rng.gauss(0, sd / 2 ** 0.5) for k in range(seeds)}
    arms = {name: Arm({k: effect + shared[k] + rng.gauss(0, sd / 2 ** 0.5)
                       for k in range(seeds)}) for name, effect in effects.items()}
    return base, arms


# -- the statistics ---------------------------------------------------------------------------

def test_null_pools_rarely_get_a_winner():
    rng = random.Random(1)
    wins = sum(judge(*_pool({"a": 0, "b": 0, "c": 0}, 6, rng), RaceRule(6, 6)).winner is not None
               for _ in range(300))
    assert wins / 300 <= 0.05


def test_a_clear_winner_is_declared_at_min_seeds():
    base, arms = _pool({"clear": 20.0, "other": 0.0}, 2, random.Random(2), sd=0.5)
    pool = judge(base, arms, RULE)
    assert pool.winner == "clear"
    assert pool.judgements["other"].verdict == RACED_OUT
    assert not pool.open  # no more seeds for anyone


def test_a_close_pool_wants_more_seeds_and_ends_undecided_at_max():
    base = {k: 0.5 + 0.02 * k for k in range(6)}
    close = Arm({0: base[0] + 0.02, 1: base[1] + 0.035})
    also = Arm({0: base[0], 1: base[1] - 0.005})
    pool = judge(base, {"close": close, "also": also}, RULE)
    assert pool.leader == "close" and pool.judgements["close"].verdict == LEADING
    assert pool.open and pool.judgements["close"].wants and pool.winner is None
    diffs = [0.02, -0.01, 0.015, -0.005, 0.01, 0.0]
    pool = judge(base, {"close": Arm({k: base[k] + d for k, d in enumerate(diffs)})}, RULE)
    assert pool.judgements["close"].verdict == UNDECIDED and not pool.open
    assert pool.judgements["close"].half_width > abs(pool.judgements["close"].delta)


def test_identical_options_have_zero_variance_and_never_win():
    base = {0: 0.5, 1: 0.6}
    pool = judge(base, {"same": Arm(dict(base)), "also": Arm(dict(base))}, RULE)
    assert {j.verdict for j in pool.judgements.values()} == {IDENTICAL}
    assert pool.winner is None and not pool.open
    assert pool.judgements["same"].delta == 0.0


def test_holm_steps_down():
    assert holm({"a": 0.001, "b": 0.03, "c": 0.04}, 0.05) == {"a"}
    assert holm({"a": 0.001, "b": 0.02, "c": 0.03}, 0.1) == {"a", "b", "c"}


# -- the config -------------------------------------------------------------------------------

@pytest.mark.parametrize(("execution", "words"), [
    ({"repeats": {"min": 4, "max": 3}}, "execution.repeats.min: expected min <= max"),
    ({"repeats": {"min": 2, "max": 4, "confidence": 1.0}}, "execution.repeats.confidence"),
    ({"repeats": {"min": 2, "max": 4, "confidence": 0.4}}, "expected a level in (0.5, 1)"),
    ({"repeats": {"min": 1, "max": 4}}, "execution.repeats.min: expected a value >= 2"),
    ({"repeats": {"min": 2, "most": 4}}, "execution.repeats.most: unknown key"),
    ({"budget": "eight hours"}, "execution.budget: expected a duration such as 8h"),
    ({"budget": "0m"}, "execution.budget: expected a duration > 0"),
])
def test_bad_race_settings_are_one_line(master_config, cli, tmp_path, execution, words):
    out = cli("--config", str(master_config(execution=execution)), "--all")
    assert out.returncode == 2 and words in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_a_race_needs_a_baseline(master_config, cli):
    out = cli("--config", str(master_config(system={"baseline": False},
                                            execution={"repeats": {"min": 2, "max": 3}})),
              "--matrix")
    assert out.returncode == 2 and "execution.repeats: adaptive repeats race" in out.stderr


def test_budget_flag_is_checked(master_config, cli):
    out = cli("--config", str(master_config()), "--all", "--budget", "soon")
    assert out.returncode == 2 and "--budget soon: expected a duration" in out.stderr


# -- the race through the runner --------------------------------------------------------------

def race_master(tmp: Path, categories: dict, execution: dict | None = None,
                noise: float = 0.02) -> Path:
    doc = {
        "system": {"project_root": str(ROOT), "base_config": "tests/fakes/base.yaml",
                   "temp_config_dir": str(tmp / "temp"), "ledger": str(tmp / "ledger.db"),
                   "runs_dir": str(tmp / "runs"), "reports_dir": str(tmp / "reports"),
                   "wandb_mode": "disabled", "overrides": [f"+fake.noise={noise}"]},
        "models": [{"name": "m", "script": "python tests/fakes/fake_train.py"}],
        "experiment_categories": {
            name: {"options": [{"fake.metric": m, "description": d} for d, m in opts.items()]}
            for name, opts in categories.items()},
        "execution": {"max_parallel": 2, "gpus": "none",
                      "repeats": {"min": 2, "max": 5, "confidence": 0.95}, **(execution or {})},
    }
    path = tmp / "race.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def seeds_run(tmp: Path) -> dict[str, int]:
    """How many seeds each option (and the baseline) ran, from the ledger."""
    db = sqlite3.connect(tmp / "ledger.db")
    out: dict[str, int] = {}
    for label, status in db.execute("SELECT label, status FROM experiments"):
        if status in ("done", "pruned"):
            name = label.split("_seed")[0]
            out[name] = out.get(name, 0) + 1
    return out


def summary_json(cli, config: Path, tmp: Path) -> dict:
    out = cli("--config", str(config), "--export", "json", str(tmp / "s.json"))
    assert out.returncode == 0, out.stderr
    return json.loads((tmp / "s.json").read_text())


def verdicts(doc: dict) -> dict[str, dict]:
    return {o["description"]: o for m in doc["models"] for c in m["categories"]
            for o in c["options"]}


# A pool the race decides at min seeds: one clear winner, one clear loser, one equal option.
CLEAR = {"big": 0.70, "worse": 0.40, "same": 0.50}
CLEAR_DECIDED = {"big": WINNER, "worse": RACED_OUT, "same": IDENTICAL}


def race_clear_pool(tmp: Path, execution: dict) -> tuple[dict[str, int], dict[str, str]]:
    """The clear pool raced in process under `execution` (another executor's block): the seeds
    each option ran and the verdicts, for a test to hold against the local race's."""
    from hyperparameter_system.app import api
    from hyperparameter_system.report.jsonexport import to_json

    settings = api.load(race_master(tmp, {"clear": CLEAR}, execution))
    result = api.run(settings, api.select(settings))
    assert not result.interrupted and result.count("failed") == 0, result.outcomes
    found = verdicts(json.loads(to_json(api.summarize(settings))))
    return seeds_run(tmp), {name: found[name]["verdict"] for name in CLEAR}


def test_a_race_decides_clear_pools_early_and_gives_close_ones_more_seeds(cli, tmp_path):
    config = race_master(tmp_path, {"clear": CLEAR, "close": {"near": 0.51, "nearer": 0.505}})
    out = cli("--config", str(config), "--all", timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    seeds = seeds_run(tmp_path)
    assert seeds["big"] == seeds["worse"] == seeds["same"] == 2  # decided at min
    assert max(seeds["near"], seeds["nearer"]) > 2  # the close pool got more
    assert seeds["baseline"] == max(seeds.values()) <= 5
    doc = summary_json(cli, config, tmp_path)
    found = verdicts(doc)
    assert found["big"]["verdict"] == WINNER and found["worse"]["verdict"] == RACED_OUT
    assert found["same"]["verdict"] == IDENTICAL and found["same"]["half_width"] == 0
    assert found["near"]["verdict"] in (UNDECIDED, RACED_OUT)
    assert found["big"]["interval"][0] > 0 and found["big"]["seeds"] == 2
    assert doc["verdicts"]["paired"] and doc["verdicts"]["race"] == "2 to 5 seeds"
    summary = cli("--config", str(config), "--summary").stdout
    assert "±" in summary and "winner" in summary and "Adaptive repeats" in summary
    html_path = tmp_path / "s.html"
    assert cli("--config", str(config), "--export", "html", str(html_path)).returncode == 0
    page = html_path.read_text()
    assert "+0.2" in page and " ± " in page and "raced out" in page and "winner" in page
    csv_path = tmp_path / "s.csv"
    assert cli("--config", str(config), "--export", "csv", str(csv_path)).returncode == 0
    assert "± " in csv_path.read_text() and "'+" not in csv_path.read_text()
    # --combine-best applies the sure winner only; the undecided pool is listed, not applied
    combined = cli("--config", str(config), "--combine-best", "--dry-run")
    assert combined.returncode == 0, combined.stderr
    text = " ".join(combined.stdout.split())
    assert "big" in text and "no sure winner" in text, text
    # a rerun of the same race launches nothing: its state is the ledger's
    again = cli("--config", str(config), "--all")
    assert again.returncode == 0 and seeds_run(tmp_path) == seeds


def test_leaders_are_applied_only_when_asked_and_labelled(cli, tmp_path):
    config = race_master(tmp_path, {"close": {"near": 0.52, "nearer": 0.505}},
                         {"repeats": {"min": 2, "max": 2}, "combine_leaders": True})
    assert cli("--config", str(config), "--all").returncode == 0
    combined = cli("--config", str(config), "--combine-best", "--dry-run")
    assert combined.returncode == 0, combined.stderr
    assert "not sure" in " ".join(combined.stdout.split())


def test_single_runs_say_the_noise_is_unknown(cli, tmp_path):
    config = race_master(tmp_path, {"clear": {"big": 0.70}}, {"repeats": 1})
    assert cli("--config", str(config), "--all").returncode == 0
    text = " ".join(cli("--config", str(config), "--summary").stdout.split())
    assert "verdicts rest on single runs" in text and "adaptive repeats" in text


def test_a_budget_stops_launching_and_says_what_stayed_undecided(cli, tmp_path):
    config = race_master(tmp_path, {"close": {"near": 0.51, "nearer": 0.505}},
                         {"repeats": {"min": 2, "max": 6}, "max_parallel": 1})
    # each run takes ~1 s (fake.sleep); the first seeds fit, more would pass the budget
    doc = yaml.safe_load(config.read_text())
    doc["system"]["overrides"].append("fake.sleep=1.0")
    config.write_text(yaml.safe_dump(doc))
    out = cli("--config", str(config), "--all", "--budget", "8s", timeout=300)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "budget:" in text and "undecided" in text and "close" in text, text
    assert max(seeds_run(tmp_path).values()) <= 3


def test_a_min_seed_the_budget_left_out_does_not_stop_the_model_s_other_pools(tmp_path):
    """A model's first look waits for its min seeds, but not for one the budget will never
    launch: the close pool of the same model still gets its next seed and the baseline's pair."""
    import threading

    from hyperparameter_system.app import api
    from hyperparameter_system.run.race import RaceSource
    from hyperparameter_system.store.outcomes import Outcome

    config = race_master(tmp_path, {"close": {"near": 0.51, "nearer": 0.505},
                                    "dear": {"x": 0.6}}, {"max_parallel": 1})
    settings = api.load(config)
    experiments = api.select(settings)
    ledger = api.open_ledger(settings, create=True)
    ledger.sync(experiments)
    rng = random.Random(1)
    means = {"baseline": 0.5, "near": 0.53, "nearer": 0.51, "x": 0.6}
    left_out = next(e for e in experiments if e.category == "dear" and e.repeat == 1)
    for e in experiments:
        if e.repeat < 2 and e is not left_out:
            ledger.claim(e.id, "host:1", 300, lambda pid: True)
            score = means[e.label.split("_seed")[0]] + rng.gauss(0, 0.01)
            now = time.time()
            ledger.finish(e.id, Outcome(e.id, "done", now - 5, now,
                                        result={"metrics": {"best_val_f1": score}}), None)
    source = RaceSource(settings, experiments, ledger, threading.Event())
    source.queue.clear()
    source.over_budget[left_out.id] = left_out  # as _pick leaves a seed the budget refused
    wanted = [(e.category, e.repeat) for e in source.wanted({r.id: r for r in ledger.rows()})]
    assert ("close", 2) in wanted and ("baseline", 2) in wanted, wanted


@pytest.mark.slow
def test_sigkill_mid_race_resumes_the_same_race(tmp_path):
    config = race_master(tmp_path, {"close": {"near": 0.51, "nearer": 0.505}},
                         {"repeats": {"min": 2, "max": 5}, "max_parallel": 1})
    doc = yaml.safe_load(config.read_text())
    doc["system"]["overrides"].append("fake.sleep=0.4")
    config.write_text(yaml.safe_dump(doc))
    events = tmp_path / "events.jsonl"
    env = {**os.environ, "PYTHON": sys.executable, "FAKE_EVENTS": str(events)}
    proc = subprocess.Popen([*RUNNER, "--config", str(config), "--all"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:  # past the first seeds (6 runs)
        if (tmp_path / "ledger.db").exists() and sum(seeds_run(tmp_path).values()) >= 7:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the race ended before it could be killed mid-way"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = seeds_run(tmp_path)
    out = subprocess.run([*RUNNER, "--config", str(config), "--all"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    after = seeds_run(tmp_path)
    assert all(after[k] >= v for k, v in before.items()) and after != before
    ended = [json.loads(line)["id"] for line in events.read_text().splitlines()]
    assert len(ended) == len(set(ended)) == sum(after.values())  # no seed ran twice
    db = sqlite3.connect(tmp_path / "ledger.db")
    assert not db.execute("SELECT id FROM experiments WHERE status != 'done'").fetchall()
    assert max(after.values()) <= 5 and after["baseline"] == max(after.values())


def test_calibrate_gives_a_new_matrix_its_estimates(cli, tmp_path):
    config = race_master(tmp_path, {"clear": {"big": 0.70}})
    before = cli("--config", str(config), "--matrix").stdout
    assert "no time estimate yet" in " ".join(before.split())
    out = cli("--config", str(config), "--calibrate", "--matrix")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "calibrated m (m|32|64|2)" in text and "estimated" in text, text
    figures = json.loads((tmp_path / "runs" / "calibration.json").read_text())
    assert list(figures) == ["m|32|64|2"] and figures["m|32|64|2"] > 0
    assert not (tmp_path / "ledger.db").exists() or not sqlite3.connect(
        tmp_path / "ledger.db").execute("SELECT id FROM experiments").fetchall()
    again = cli("--config", str(config), "--calibrate", "--dry-run")
    assert "calibrated" not in again.stdout  # known shapes are not calibrated twice


def test_pruning_works_inside_the_race(cli, tmp_path):
    config = race_master(tmp_path, {"clear": {"big": 0.70}}, {
        "pruning": {"rule": "successive_halving", "min_epochs": 1, "reduction_factor": 2},
        "max_parallel": 1})
    doc = yaml.safe_load(config.read_text())
    doc["system"]["overrides"] += ["fake.epochs=4", "+fake.epoch_s=0.3"]
    doc["experiment_categories"]["clear"]["options"].append(
        {"+fake.curve": [0.1, 0.1, 0.1, 0.1], "description": "dud"})
    config.write_text(yaml.safe_dump(doc))
    out = cli("--config", str(config), "--all", timeout=300)
    assert out.returncode == 0, out.stderr
    found = verdicts(summary_json(cli, config, tmp_path))
    assert found["dud"]["verdict"] == "pruned" and not found["dud"]["winner"]
    assert seeds_run(tmp_path)["dud"] <= 2  # a pruned seed is final: no more seeds for it
    assert found["big"]["verdict"] == WINNER
