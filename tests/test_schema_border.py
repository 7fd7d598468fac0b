"""The border facts have one owner: the engine publishes its schema, the runner checks against
it. For every key and name of the schema, the runner refuses exactly what the engine refuses."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODES = ROOT / "codes"
if str(CODES) not in sys.path:
    sys.path.insert(0, str(CODES))

from trainer.config import validate  # noqa: E402
from trainer.errors import ConfigError  # noqa: E402

from hyperparameter_system.config.schema import load_schema, schema_path  # noqa: E402

SCHEMA = load_schema(CODES / "train.schema.json")

GENERIC: list[Any] = [None, True, False, 0, 1, -1, 2, 7, 0.5, 1.5, -0.5, 1e-9, 1e308,
                      math.nan, math.inf, -math.inf, "abc", "1e-3", "0", "-1", "nan", "inf",
                      "", [], [0.5], [0.5, 0.5, 0.5], [1, 2], ["a"], [0, 1, 2], {}, {"x": 1}]


def _probes(spec: dict[str, Any]) -> list[Any]:
    values = list(GENERIC)
    for bound in ("low", "high"):
        if bound in spec:
            b = spec[bound]
            values += [b, b - 1, b + 1, b - 1e-9, b + 1e-9, int(b) if float(b).is_integer()
                       else b, str(b)]
    for name in spec.get("choices", []):
        values += [name, name.lower(), name.upper(), f"{name}x", name[:-1]]
    items = spec.get("items")
    if items:
        values += [[v] for v in _probes({k: v for k, v in items.items() if k != "items"})
                   if not isinstance(v, list | dict)]
    return values


def _nested(key: str, value: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    node = cfg
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return cfg


def _engine_accepts(key: str, value: Any) -> bool:
    try:
        validate(_nested(key, value))
    except ConfigError:
        return False
    return True


CASES = [(key, value) for key, spec in SCHEMA.keys.items() for value in _probes(dict(spec))]


def _runner_accepts(cfg: dict[str, Any]) -> bool:
    """The runner's verdict on a whole config: every key, then the published rules."""
    return all(SCHEMA.problem(key, _get(cfg, key)) is None for key in _flat(cfg)) and \
        SCHEMA.rule_problem(cfg) is None


def _flat(cfg: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in cfg.items():
        out.append(prefix + key)
        if isinstance(value, dict):
            out += _flat(value, f"{prefix}{key}.")
    return out


def _get(cfg: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def test_the_schema_covers_the_facts_that_drifted() -> None:
    """The drift the layout issue found: smoothing 1.0 and a StepLR gamma of 0."""
    assert SCHEMA.problem("label_smooth", 1.0) is not None
    assert SCHEMA.problem("scheduler_params.gamma", 0) is not None
    assert not _engine_accepts("label_smooth", 1.0)
    assert not _engine_accepts("scheduler_params.gamma", 0)


@pytest.mark.parametrize(("key", "value"), CASES, ids=[f"{k}={v!r}"[:60] for k, v in CASES])
def test_runner_and_engine_agree(key: str, value: Any) -> None:
    runner = _runner_accepts(_nested(key, value))
    assert runner == _engine_accepts(key, value), (key, value, SCHEMA.problem(key, value))


def test_the_sidecar_is_what_the_engine_describes_and_needs_no_torch() -> None:
    probe = ("import json, sys; sys.path.insert(0, 'codes'); sys.argv = ['train.py', "
             "'--describe']; import runpy, io, contextlib; buf = io.StringIO()\n"
             "with contextlib.redirect_stdout(buf):\n"
             "    try: runpy.run_path('codes/train.py', run_name='__main__')\n"
             "    except SystemExit: pass\n"
             "print(json.dumps({'torch': 'torch' in sys.modules, 'out': buf.getvalue()}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["torch"] is False
    assert json.loads(seen["out"]) == json.loads((CODES / "train.schema.json").read_text())


@pytest.mark.parametrize("script", [["python", "codes/train.py"], ["run_absolute.sh"],
                                    ["run_b3.sh"], ["tests/fakes/fake_train.sh"]])
def test_every_shipped_script_finds_the_engine_schema(script: list[str]) -> None:
    found = schema_path(script, ROOT)
    assert found is not None and found.resolve() == (CODES / "train.schema.json").resolve()


def test_a_script_without_schema_gets_none(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("print('hi')\n")
    assert schema_path(["python", "mine.py"], tmp_path) is None


@pytest.mark.parametrize(("category", "option", "key"), [
    ("loss_function", {"name": "LabelSmoothingLoss", "smoothing": 1.0}, "smoothing"),
    ("scheduler", {"name": "StepLR", "step_size": 5, "gamma": 0}, "gamma"),
])
def test_a_master_config_with_a_drifted_value_is_refused_before_launch(
        tmp_path: Path, master_config, cli, category: str, option: dict[str, Any],
        key: str) -> None:
    """The drift through the whole CLI: one line naming file, line and key; nothing launched."""
    path = master_config(models=[{"name": "net", "script": "tests/fakes/fake_train.sh"}],
                         experiment_categories={category: {"options": [option]}})
    res = cli("--config", str(path), "--all")
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert f"{path}:" in lines[0] and f"options[0].{key}" in lines[0], lines[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "ledger.db").exists()


# -- cross-key rules -----------------------------------------------------------------------
RULE_VALUES: list[Any] = [_MISSING := object(), None, True, False, 0, 1, 2, 3, 5, 0.5, 1.0,
                          -1, "0", "0.5", "2", "x"]


def _rule_keys(rule: dict[str, Any]) -> list[str]:
    terms = [*rule["if"], *rule["then"]]
    terms += [t["than"] for t in terms if "than" in t]
    return list(dict.fromkeys(k for t in terms for k in t["keys"]))


def _rule_configs(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of probe values over the keys the rule reads (a key also missing)."""
    import itertools

    keys = _rule_keys(rule)
    configs = []
    for values in itertools.product(RULE_VALUES, repeat=len(keys)):
        cfg: dict[str, Any] = {}
        for key, value in zip(keys, values, strict=True):
            if value is _MISSING:
                continue
            *parents, last = key.split(".")
            node = cfg
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        configs.append(cfg)
    return configs


def _engine_accepts_config(cfg: dict[str, Any]) -> bool:
    import copy

    try:
        validate(copy.deepcopy(cfg))
    except ConfigError:
        return False
    return True


def test_the_engine_publishes_its_cross_key_rules() -> None:
    names = {r["name"] for r in SCHEMA.rules}
    assert names == {"val_split_ratio", "warmup_shorter_than_run",
                     "dynamic_augmentation_is_online"}


@pytest.mark.parametrize("rule", [r["name"] for r in SCHEMA.rules])
def test_runner_and_engine_agree_on_every_rule(rule: str) -> None:
    """Every combination of values around each published rule: the runner refuses exactly
    what the engine refuses, and the rule itself refuses some (it is not vacuous)."""
    spec = next(r for r in SCHEMA.rules if r["name"] == rule)
    by_rule = 0
    for cfg in _rule_configs(spec):
        runner, engine = _runner_accepts(cfg), _engine_accepts_config(cfg)
        assert runner == engine, (cfg, SCHEMA.rule_problem(cfg))
        keys_ok = all(SCHEMA.problem(k, _get(cfg, k)) is None for k in _flat(cfg))
        by_rule += keys_ok and not engine
    assert by_rule > 0


@pytest.mark.parametrize(("sets", "says"), [
    (["val_split_ratio=0"], "'val_split_ratio' expected a number in (0, 1)"),
    (["val_split_ratio=1"], "'val_split_ratio' expected a number in (0, 1)"),
    (["warmup_epochs=5", "epochs=2"], "warmup_epochs: expected fewer than epochs (2), got 5"),
    (["scheduler_params.warmup_epochs=5", "epochs=2"],
     "scheduler_params.warmup_epochs: expected fewer than epochs (2)"),
    (["random_seed=-1"], "random_seed=-1"),
    (["++dynamic_augmentation.enabled=true", "++online_augmentation=false"],
     "online_augmentation: false, but dynamic_augmentation.enabled is true"),
])
def test_the_issue_cases_are_refused_before_launch(tmp_path: Path, sets: list[str],
                                                   says: str) -> None:
    """What launched 3 runs that all failed: one line at load, nothing run."""
    from hyperparameter_system.config.settings import load_settings
    from hyperparameter_system.core.errors import HpsysError

    master = tmp_path / "m.yaml"
    master.write_text(f"system: {{project_root: {ROOT}, ledger: {tmp_path}/l.db}}\n"
                      "models: [{name: m1, script: python codes/train.py}]\n"
                      "experiment_categories: {early_stopping: {options: [{patience: 3}]}}\n")
    with pytest.raises(HpsysError, match=re.escape(says)):
        load_settings(master, sets)


def test_an_option_breaking_a_rule_on_a_base_is_told_at_the_option(tmp_path: Path) -> None:
    from hyperparameter_system.config.settings import load_settings
    from hyperparameter_system.core.errors import HpsysError

    master = tmp_path / "m.yaml"
    master.write_text(f"system: {{project_root: {ROOT}, ledger: {tmp_path}/l.db,"
                      " overrides: [epochs=2]}\n"
                      "models: [{name: m1, script: python codes/train.py}]\n"
                      "experiment_categories:\n  scheduler:\n    options:\n"
                      "      - {name: CosineAnnealingLR, T_max: 2}\n"
                      "      - {name: CosineAnnealingWarmupRestarts, T_max: 2, warmup_epochs: 5}\n")
    with pytest.raises(HpsysError, match=rf"{re.escape(str(master))}:7: experiment_categories"
                       r"\.scheduler\.options\[1\]: scheduler_params\.warmup_epochs: expected "
                       r"fewer than epochs \(2\), got 5 \(on model m1\)"):
        load_settings(master)
