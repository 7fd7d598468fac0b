"""An experiment's id is the hash of its model, category, option, config and script: stable
across runs, so a resumed runner finds its rows. The matrix serialises each model's base once
(CanonicalBase); the ids must be exactly what the plain canonical JSON gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperparameter_system.config.settings import load_settings
from hyperparameter_system.core.configdict import (
    CanonicalBase,
    apply_changes,
    canonical,
    stable_hash,
)
from hyperparameter_system.core.yamlfile import load_yaml
from hyperparameter_system.matrix.experiments import build_matrix

ROOT = Path(__file__).resolve().parents[1]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                    st.floats(allow_nan=False))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=4)),
    max_leaves=12)
configs = st.dictionaries(st.sampled_from(["a", "b", "lr", "x", "é", "z"]), values, max_size=6)
changes = st.dictionaries(st.sampled_from(["a", "b.c", "lr", "x.y.z", "new"]), values,
                          max_size=3)


@settings(max_examples=300, deadline=None)
@given(configs, st.lists(changes, min_size=1, max_size=4))
def test_the_base_text_shortcut_is_the_canonical_text(base: dict[str, Any], changed) -> None:
    texts = CanonicalBase(base)
    for change in changed:
        config = apply_changes(base, change)
        tops = [k.split(".")[0] for k in change]
        assert texts.text(config, tops) == canonical(config)
        assert texts.stable_hash(("m", "cat", "{}"), config, tops, (["python", "x.py"],)) == \
            stable_hash("m", "cat", "{}", config, ["python", "x.py"])


@pytest.mark.parametrize("repeats", [1, 3])
def test_the_shipped_configs_keep_their_ids(repeats: int) -> None:
    """Every experiment of the repository's master configs (repeated: each its own seed), as
    the plain formula gives it."""
    for name in ("experiment_config.yaml", "examples/quickstart.yaml"):
        settings_ = load_settings(ROOT / name)
        settings_ = dataclasses.replace(settings_, execution=dataclasses.replace(
            settings_.execution, repeats=repeats))
        for e in build_matrix(settings_, strict=False):
            assert e.id == stable_hash(e.model, e.category, canonical(e.option), e.config,
                                       list(e.script)), e.describe()


def _ids(tmp_path: Path, sets: list[str], option_text: str = "{fake.sleep: 0}") -> list[str]:
    master = tmp_path / "master.yaml"
    master.write_text(
        f"system: {{project_root: {ROOT}, base_config: tests/fakes/base.yaml,"
        f" ledger: {tmp_path}/l.db}}\n"
        "models: [{name: m1, script: python tests/fakes/fake_train.py}]\n"
        f"experiment_categories: {{fake: {{options: [{option_text}]}}}}\n")
    return [e.id for e in build_matrix(load_settings(master, sets))]


def test_a_number_spelt_two_ways_is_one_experiment(tmp_path: Path) -> None:
    """Issue 20 item 7: ids come from parsed values: `1e-3` is the number 0.001 (YAML 1.1 would
    leave it a string), and where the engine's schema takes only numbers a quoted '0.001' is
    the number it reads; where it takes strings a quoted string stays a string."""
    plain = _ids(tmp_path, ["lr=0.001"])
    for spelling in ("lr=1e-3", "lr=1.0E-3", "lr='0.001'", "lr='1e-3'"):
        assert _ids(tmp_path, [spelling]) == plain, spelling
    assert _ids(tmp_path, ["lr=0.002"]) != plain
    for option in ("{lr: 1e-3}", "{lr: '0.001'}", "{lr: '1e-3'}"):
        assert _ids(tmp_path, [], option) == _ids(tmp_path, [], "{lr: 0.001}"), option
    settings = load_settings(tmp_path / "master.yaml", ["output_dir='1e-3'", "norm_std=['0.5']"])
    base = settings.model("m1").base  # a string key keeps its string; number lists are read
    assert base["output_dir"] == "1e-3" and base["norm_std"] == [0.5]
    (tmp_path / "opt.yaml").write_text("a: 1e-3\nb: '1e-3'\n")
    assert load_yaml(tmp_path / "opt.yaml").data == {"a": 0.001, "b": "1e-3"}
