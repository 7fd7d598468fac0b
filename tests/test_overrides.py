"""One grammar, Hydra's, on both sides of the border: one corpus of override strings fed to the
runner's check (`--set`, as load_settings reads it against codes/train.py's schema) and to the
engine (`codes/train.py KEY=VALUE`, trainer.config.load_config). They accept and refuse exactly
the same strings and produce the same values. The corpus holds the cases that drifted while the
two sides had hand-written parsers, and every form of Hydra's override grammar."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODES = ROOT / "codes"
if str(CODES) not in sys.path:
    sys.path.insert(0, str(CODES))

from trainer.config import load_config  # noqa: E402
from trainer.errors import ConfigError  # noqa: E402

from hpsys_reporter import overrides  # noqa: E402
from hyperparameter_system.config.settings import load_settings  # noqa: E402
from hyperparameter_system.core.configdict import get_dotted  # noqa: E402
from hyperparameter_system.core.errors import HpsysError  # noqa: E402

BASE = CODES / "config_v2.yaml"
GONE = object()  # the key is not in the config
NULL = object()  # the key holds null

# (override, the value its key holds afterwards; None: both sides refuse it)
CORPUS: list[tuple[str, Any]] = [
    # the drifted cases: each side used to read them its own way
    ("scheduler_name=", None),              # '' is no scheduler (the runner took it as null)
    ("run_name=", ""),                       # the empty string on both sides (was null / '')
    ("wandb.group=", ""),
    ("scheduler_params.T_max=", None),      # '' is not a number (the runner took null)
    ("class_weighting=", None),
    ("num_classes=", None),
    ("focal_alpha=", None),
    ("n_folds=", None),
    ("~lr", GONE),                           # deleting is Hydra's (the runner refused it)
    ("lr = 0.1", None),                      # not Hydra's grammar (the runner took it)
    # key=value, +key=value, ++key=value, ~key, ~key=value
    ("lr=0.1", 0.1),
    ("lr=1e-3", 0.001),
    ("lr=1.0e-3", 0.001),
    ("lr=.5", 0.5),
    ("lr=1.", 1.0),
    ("epochs=+3", 3),
    ("epochs=1_0", 10),
    ("+lr=0.1", None),                       # + adds a key, lr exists
    ("++lr=0.2", 0.2),
    ("+extra=1", 1),
    ("++extra.nested=[1, 2]", [1, 2]),
    ("+extra={a: 1, b: [x, y]}", {"a": 1, "b": ["x", "y"]}),
    ("nope=1", None),                        # = changes a key that exists
    ("scheduler_params.T_mx=3", None),
    ("~nope", None),
    ("~wandb.group", GONE),
    ("~lr=0.001", GONE),                     # deleted while it holds that value
    ("~lr=0.5", None),
    # values: quoted strings, null, bools, lists, dicts (merged into a mapping), casts
    ("run_name='a b'", "a b"),
    ('run_name="x,y"', "x,y"),
    ("run_name=a\\,b", "a,b"),
    ("run_name=abc def", "abc def"),
    ("run_name=null", NULL),
    ("run_name=str(5)", "5"),
    ("batch_size=int(32.0)", 32),
    ("lr=float(1)", 1.0),
    ("pretrained=true", True),
    ("pretrained=True", True),
    ("pretrained=1", None),
    ("pretrained=bool(0)", False),
    ("norm_mean=[0.5,0.5,0.5]", [0.5, 0.5, 0.5]),
    ("norm_mean=[0.5,0.5", None),
    ("scheduler_params={T_max: 5}", 5),      # merged: the other scheduler_params stay
    ("batch_size=abc", None),
    ("lr=fast", None),
    ("optimizer_name=sgd", "sgd"),
    ("optimizer_name=Sgdd", None),
    # interpolation, resolved before anything reads it
    ("run_name=${optimizer_name}_run", "AdamW_run"),
    ("+data_root=${oc.env:HPSYS_NO_SUCH_VAR,./data}", "./data"),
    ("run_name=${no_such_key}", None),
    # NaN and infinity are never a setting
    ("lr=nan", None),
    ("lr=inf", None),
    ("lr=-inf", None),
    # sweeps where one value is expected
    ("lr=0.1,0.2", None),
    ("lr=range(1,3)", None),
    ("lr=choice(0.1,0.2)", None),
    ("lr=interval(0,1)", None),
    ("lr=shuffle(0.1,0.2)", None),
    ("lr=sort(0.2,0.1)", None),
    ("lr=glob(*)", None),
    # not an override at all, or a config group where the base has none
    ("lr", None),
    ("=3", None),
    ("lr==1", None),
    ("lr.=1", None),
    ("optimizer@opt=sgd", None),
    ("hydra/launcher=basic", None),
]
KEYS = {"run_name=null": "run_name", "scheduler_params={T_max: 5}": "scheduler_params.T_max"}


def _key(text: str) -> str:
    return KEYS.get(text) or text.lstrip("+~").split("=", 1)[0].strip()


def _master(tmp_path: Path) -> Path:
    path = tmp_path / "master.yaml"
    path.write_text(
        f"system: {{project_root: {ROOT}, base_config: {BASE}, ledger: {tmp_path / 'l.db'}}}\n"
        "models: [{name: resnet18, script: python codes/train.py}]\n"
        "experiment_categories: {early_stopping: {options: [{patience: 3}]}}\n")
    return path


def _runner(master: Path, text: str) -> tuple[bool, Any, str]:
    try:
        model = load_settings(master, [text]).models[0]
    except HpsysError as exc:
        return False, None, str(exc)
    return True, get_dotted(model.base, _key(text), GONE), ""


def _engine(text: str) -> tuple[bool, Any, str]:
    try:
        cfg = load_config(BASE, [text])
    except ConfigError as exc:
        return False, None, exc.one_line()
    return True, get_dotted(cfg, _key(text), GONE), ""


@pytest.mark.parametrize(("text", "want"), CORPUS, ids=[t for t, _ in CORPUS])
def test_runner_and_engine_read_an_override_alike(tmp_path: Path, text: str, want: Any) -> None:
    ran, ran_value, ran_error = _runner(_master(tmp_path), text)
    eng, eng_value, eng_error = _engine(text)
    assert ran == eng, (text, ran_error, eng_error)
    if want is None:
        assert not ran
        assert "\n" not in ran_error and "\n" not in eng_error
        assert text in ran_error and text in eng_error  # each names the override
        return
    assert ran, (text, ran_error)
    expected = None if want is NULL else want
    assert ran_value == eng_value == expected or (ran_value is eng_value is GONE is expected)
    assert type(ran_value) is type(eng_value)


def test_the_runner_refuses_a_sweep_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(HpsysError, match=r"--set lr=0.1,0.2 .*is a sweep.*--sweep"):
        load_settings(_master(tmp_path), ["lr=0.1,0.2"])


def test_one_value_spelt_two_ways_is_one_value() -> None:
    """Experiment ids come from parsed values: 1e-3 is 0.001, '0.001' is a string."""
    assert overrides.parse("lr=1e-3").value == overrides.parse("lr=0.001").value
    assert overrides.parse("lr='0.001'").value == "0.001"
    assert math.isnan(overrides.parse("lr=nan").value)


def test_sweep_values_are_hydras() -> None:
    assert overrides.sweep_values("lr=1e-3,3e-3") == ("lr", [0.001, 0.003])
    assert overrides.sweep_values("epochs=range(1,4)") == ("epochs", [1, 2, 3])
    assert overrides.sweep_values("optimizer=choice(adamw,sgd)") == ("optimizer",
                                                                      ["adamw", "sgd"])
    with pytest.raises(overrides.OverrideError, match="interval"):
        overrides.sweep_values("lr=interval(0,1)")


def test_the_runner_starts_without_hydra() -> None:
    """Hydra's parser costs about 0.25 s: a command that reads no override never imports it."""
    code = ("import sys, hyperparameter_system.experiment_runner, hyperparameter_system.app.api;"
            "print('hydra' in sys.modules, 'omegaconf' in sys.modules)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"], (out.stdout, time.perf_counter() - start)


def test_an_option_written_as_overrides_is_the_mapping_it_stands_for(tmp_path: Path) -> None:
    """A YAML-only option may be written in the same grammar: `- lr=1e-3` is `- {lr: 0.001}`."""
    path = tmp_path / "master.yaml"
    path.write_text(
        f"system: {{project_root: {ROOT}, base_config: {BASE}, ledger: {tmp_path / 'l.db'}}}\n"
        "models: [{name: resnet18, script: python codes/train.py}]\n"
        "experiment_categories:\n"
        "  tuned:\n"
        "    options:\n"
        "      - lr=1e-3\n"
        "      - [optimizer_name=SGD, 'run_name=a b', '+extra=[1,2]']\n"
        "  optimizer:\n"
        "    options: ['name=SGD']\n")
    tuned, optimizer = load_settings(path).categories
    assert tuned.options == ({"lr": 0.001}, {"optimizer_name": "SGD", "run_name": "a b",
                                             "+extra": [1, 2]})
    assert optimizer.options == ({"name": "SGD"},)
    path.write_text(path.read_text().replace("- lr=1e-3", "- lr=1e-3,1e-2"))
    with pytest.raises(HpsysError, match=r"master.yaml:6: experiment_categories.tuned.options"
                                         r"\[0\]: override 'lr=1e-3,1e-2': is a sweep"):
        load_settings(path)
