"""The engine's published schema: one owner of types, ranges and names, torch-free and fresh."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest
from trainer import schema
from trainer.config import apply_overrides, flat_keys, load_yaml, validate
from trainer.errors import ConfigError
from trainer.schema import KEYS, check

FIELDS = {"type", "low", "low_open", "high", "high_open", "choices", "ignore_case", "items"}
TYPES = {"int", "number", "bool", "string", "mapping", "list", "null"}
# keys that take numbers and no strings ("inf" is a fine string for a scheduler's free param)
NUMBER_KEYS = [key for key, spec in KEYS.items()
               if "number" in spec["type"] and "string" not in spec["type"]]
REGENERATE = "regenerate with: python codes/train.py --describe > codes/train.schema.json"


def _describe(repo_root) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "codes/train.py", "--describe"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_timm_optimizer_names_are_fresh():
    from timm.optim import list_optimizers
    from trainer.schema_names import TIMM_OPTIMIZERS

    assert list(TIMM_OPTIMIZERS) == list_optimizers(), (
        "timm's optimizers changed: regenerate with python codes/trainer/regenerate_names.py"
    )


def test_scheduler_parameter_names_are_fresh():
    from trainer.regenerate_names import scheduler_params
    from trainer.schema_names import SCHEDULER_PARAMS

    assert list(SCHEDULER_PARAMS) == scheduler_params(), (
        "run: python codes/trainer/regenerate_names.py, then regenerate codes/train.schema.json"
    )


def test_describe_prints_the_schema_fast_and_the_sidecar_is_fresh(repo_root, codes_dir):
    started = time.monotonic()
    proc = _describe(repo_root)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    published = json.loads(proc.stdout)
    assert published == json.loads(json.dumps(schema.describe()))
    assert (codes_dir / "train.schema.json").read_text(encoding="utf-8") == proc.stdout, REGENERATE
    assert elapsed < 5, f"--describe took {elapsed:.2f}s"  # ~0.2 s; generous for busy machines


def test_describe_never_imports_torch(repo_root):
    """In a fresh interpreter (this one has torch already): train.py's describe path, in-process."""
    code = (
        "import sys, io, contextlib; sys.path.insert(0, 'codes'); import train\n"
        "with contextlib.redirect_stdout(io.StringIO()): assert train.main(['--describe']) == 0\n"
        "heavy = [m for m in ('torch', 'timm', 'numpy', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def test_published_format():
    doc = schema.describe()
    assert set(doc) == {"schema_version", "engine", "open", "numeric_strings", "keys", "rules"}
    assert doc["schema_version"] == 2 and doc["engine"] == "codes/train.py"
    assert doc["open"] is True and doc["numeric_strings"] is True

    def conforms(spec: dict, where: str) -> None:
        assert set(spec) <= FIELDS | {"lengths"}, where
        assert spec["type"] and set(spec["type"]) <= TYPES, where
        assert ("low" in spec) == ("low_open" in spec), where
        assert ("high" in spec) == ("high_open" in spec), where
        assert ("choices" in spec) == ("ignore_case" in spec), where
        if "items" in spec:
            conforms(spec["items"], f"{where}.items")

    for key, spec in doc["keys"].items():
        conforms(spec, key)


def test_every_shipped_key_is_described(codes_dir):
    shipped = flat_keys(load_yaml(codes_dir / "config_v2.yaml"))
    assert [key for key in shipped if key not in KEYS] == []


@pytest.mark.parametrize("key", NUMBER_KEYS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "nan", "inf", "-Infinity"])
def test_every_number_key_refuses_nan_and_infinity(key, bad):
    assert check(KEYS[key], bad) is not None
    *parents, last = key.split(".")
    cfg: dict = {}
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = bad
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(cfg)


def test_nan_from_yaml_is_refused(tmp_path, codes_dir):
    from trainer.config import load_config

    for override in ("lr=.nan", "label_smooth=.inf", "scheduler_params.factor=.nan"):
        with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[-1]):
            load_config(codes_dir / "config_v2.yaml", [override])


def test_numeric_strings_stay_numbers():
    assert check(KEYS["lr"], "1e-3") is None
    cfg = validate({"lr": "1e-3", "norm_std": ["0.5"], "scheduler_params": {"eta_min": "0"}})
    assert cfg["lr"] == pytest.approx(0.001) and cfg["norm_std"] == [0.5]
    assert cfg["scheduler_params"]["eta_min"] == 0.0
    assert check(KEYS["batch_size"], "32") == "an integer"  # only number keys take strings


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("epochs", True, "an integer"),
        ("epochs", 0, "a positive integer"),
        ("epochs", 2.0, "an integer"),
        ("patience", None, None),
        ("patience", -1, "an integer >= 0"),
        ("lr", 0, "a number > 0"),
        ("lr", False, "a number"),
        ("momentum", 1.0, None),
        ("label_smooth", 1, "a number in [0, 1)"),
        ("focal_alpha", None, None),
        ("norm_std", [0.2, 0.0, 0.2], "1 or 3 numbers > 0"),
        ("norm_mean", "abc", "1 or 3 numbers"),
        ("class_weighting", ["x"], "a list of numbers"),
        ("class_weighting", 3, "a string or a list of numbers or true/false or null"),
        ("class_weighting", "Balanced", None),
        ("fine_tuning", "Head", "one of full, head, custom, scratch"),
        ("optimizer_name", "ADAMW", None),
        ("scheduler_name", None, None),
        ("criterion", "focal", None),
        ("augment.hflip", math.nan, "a finite number"),
    ],
)
def test_check_says_what_was_expected(key, value, expected):
    assert check(KEYS[key], value) == expected


def test_config_refusals_come_from_the_schema():
    """config.py's accept/refuse of every key is check()'s: a key the schema accepts passes."""
    for key, spec in KEYS.items():
        if "choices" in spec:
            for name in spec["choices"]:
                validate(apply_overrides({}, [f"++{key}={name}"]))
    with pytest.raises(ConfigError,
                       match=r"'fine_tuning' expected one of full, head, custom, scratch"):
        validate({"fine_tuning": "Head"})


def _builders() -> dict:
    """How the engine resolves each named key (torch imported only by the tests that use it)."""
    from trainer import builders

    return {
        "optimizer_name": builders.optimizer_key,
        "scheduler_name": builders.scheduler_class,
        "criterion": lambda name: builders.build_criterion({"criterion": name}, None),
    }


NAMED = [
    (key, form)
    for key in ("optimizer_name", "scheduler_name", "criterion")
    for name in KEYS[key]["choices"]
    for form in dict.fromkeys((name, name.lower(), name.upper()))
]


@pytest.mark.parametrize(("key", "name"), NAMED)
def test_every_name_the_schema_publishes_is_built(key, name):
    """The runner accepts the published names (ignoring case); each must be one the engine
    builds, so no option passes the runner's check and then fails in training."""
    assert KEYS[key]["ignore_case"] is True
    _builders()[key](name)


@pytest.mark.parametrize(
    ("key", "name"),
    [("optimizer_name", "adamm"), ("scheduler_name", "cosine"), ("criterion", "hinge")],
)
def test_names_the_schema_refuses_are_not_built(key, name):
    assert check(KEYS[key], name) is not None
    with pytest.raises(ConfigError, match=f"{key}: unknown"):
        _builders()[key](name)
