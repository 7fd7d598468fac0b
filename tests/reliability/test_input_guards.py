"""Issue 15, items 6-10: bad input that used to get through. NaN and infinity in the master
config, a YAML key given twice, alias bombs, hand-corrupted ledger cells, and model names W&B
would refuse as a project name."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from relkit import ROOT, master_dict, write_master
from test_bad_input import alias_bomb

from hyperparameter_system.config.entries import ModelSettings
from hyperparameter_system.config.reader import Reader
from hyperparameter_system.config.settings import load_settings
from hyperparameter_system.core import yamlfile
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.core.safe_names import WANDB_PROJECT_MAXLEN, wandb_project_name
from hyperparameter_system.core.yamlfile import load_yaml
from hyperparameter_system.store.ledger import Ledger
from hyperparameter_system.store.row import Row, row_problems


def _load_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "doc.yaml"
    path.write_text(text)
    with pytest.raises(HpsysError) as caught:
        load_yaml(path)
    return str(caught.value)


# -- 6: NaN and infinity -----------------------------------------------------------------------
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_reader_refuses_nan_and_infinity_for_every_number(tmp_path, value):
    doc = yamlfile.YamlDoc(tmp_path / "m.yaml", {"x": value}, {("execution", "x"): 7})
    reader = Reader(doc, ("execution",), {"x": value}, {"x": (int, float)})
    with pytest.raises(HpsysError, match=r"m\.yaml:7: execution\.x: expected a finite number"):
        reader.number("x", 1.0, 0)


def test_nan_timeout_no_longer_disables_the_timeout(tmp_path):
    config = write_master(tmp_path, master_dict(tmp_path, execution={"experiment_timeout": 60}))
    assert load_settings(config).execution.experiment_timeout == 60  # the good one loads
    text = config.read_text().replace("experiment_timeout: 60", "experiment_timeout: .nan")
    config.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "experiment_timeout" in t)
    with pytest.raises(HpsysError, match=rf"master\.yaml:{line}: execution\.experiment_timeout"):
        load_settings(config)


# -- 7: duplicate keys -------------------------------------------------------------------------
def test_a_key_given_twice_names_both_lines(tmp_path):
    text = ("experiment_categories:\n  optimizer:\n    options: [{name: SGD}]\n"
            "  scheduler: {options: [{name: StepLR}]}\n  optimizer:\n    options: [{name: Adam}]\n")
    assert _load_error(tmp_path, text).endswith(
        "doc.yaml:5: experiment_categories.optimizer: duplicate key, also at line 2: the first "
        "value would be dropped; keep one")


def test_two_keys_on_one_line_and_quoted_spellings_are_duplicates(tmp_path):
    assert "doc.yaml:1: a: duplicate key, also at line 1" in _load_error(tmp_path,
                                                                          "{a: 1, a: 2}\n")
    assert "doc.yaml:2: a: duplicate key" in _load_error(tmp_path, "a: 1\n'a': 2\n")


def test_keys_that_only_look_alike_and_merge_keys_are_no_duplicates(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("'1': a\n1: b\nd: &d {x: 1, y: 2}\nm: {<<: *d, x: 3}\n")
    doc = load_yaml(path)
    assert doc.data == {"1": "a", 1: "b", "d": {"x": 1, "y": 2}, "m": {"x": 3, "y": 2}}
    assert doc.where(("m", "x")) == f"{path}:4: m.x"


def test_every_yaml_file_of_the_repository_still_loads():
    tracked = [p for pattern in ("*.yaml", "*.yml") for p in ROOT.rglob(pattern)
               if ".venv" not in p.parts and "node_modules" not in p.parts]
    assert tracked
    for path in tracked:
        try:
            load_yaml(path)
        except HpsysError as exc:
            assert "duplicate key" not in str(exc) and "alias" not in str(exc), exc


# -- 8: alias bombs ----------------------------------------------------------------------------
@pytest.mark.timeout(60)  # expanded, a 9-level bomb is 387 million leaves: this would not end
def test_a_nine_level_alias_bomb_is_refused_before_it_expands(tmp_path):
    message = _load_error(tmp_path, alias_bomb(9))
    assert message.endswith(f"YAML error: aliases expand to more than {yamlfile.ALIAS_BUDGET} "
                            "nodes (an alias bomb?); write the values out or reuse fewer anchors")


def test_anchors_reused_within_the_budget_still_load(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(alias_bomb(3))  # 9**3 = 729 leaves
    assert len(load_yaml(path).data["lol3"]) == 9


def test_an_alias_inside_itself_is_still_one_error(tmp_path):
    assert "recursive alias" in _load_error(tmp_path, "a: &a [*a]\n")


# -- 9: hand-corrupted ledger cells ------------------------------------------------------------
def test_a_row_reads_unreadable_cells_as_missing_and_tells_them():
    row = Row.from_columns({"id": "abc123", "result_json": "{bad", "duration_s": "x",
                            "option_json": "[1]", "config_json": '{"lr": 0.1}', "attempts": 2})
    assert (row.result, row.option, row.config) == ({}, {}, {"lr": 0.1})
    assert row.duration_s is None and row.attempts == 2
    assert sorted(row_problems([row])) == [
        "ledger row abc123: duration_s 'x' is not a number; read as missing",
        "ledger row abc123: option_json '[1]' is not a JSON object; read as missing",
        "ledger row abc123: result_json '{bad' is not a JSON object; read as missing",
    ]
    assert Row.from_columns({"id": "ok", "result_json": '{"a": 1}',
                             "duration_s": 3.0}).problems == []


def test_a_corrupted_ledger_cell_is_warned_in_the_summary_and_the_matrix(tmp_path, cli):
    config = write_master(tmp_path, master_dict(tmp_path, [{"fake.sleep": 0},
                                                           {"fake.metric": 0.7}]))
    code, _, err = cli("--config", str(config), "--all")
    assert code == 0, err
    ledger = Ledger(tmp_path / "l.db")
    bad, good = (r.id for r in ledger.rows())
    db = sqlite3.connect(tmp_path / "l.db")
    with db:
        db.execute("UPDATE experiments SET result_json='{bad', duration_s='x' WHERE id=?", (bad,))
    db.close()
    for flag in ("--summary", "--matrix"):
        code, out, err = cli("--config", str(config), flag)
        assert code == 0 and "Traceback" not in err, err
        assert f"warning: ledger row {bad}: duration_s 'x' is not a number" in err, err
        if flag == "--summary":
            assert f"warning: ledger row {bad}: result_json '{{bad' is not a JSON object" in err
        assert good not in err
        assert out.strip()  # the report itself goes on


# -- 10: W&B project names ---------------------------------------------------------------------
def _model(name: str) -> ModelSettings:
    return ModelSettings(name, True, Path("base.yaml"), ("python", "train.py"), "")


NAMES = ["resnet50.tv2_in1k", "hf-hub:timm/eva02_base_patch14_224.mim_in22k",
         "hf_hub:timm/x?y#z%w\\v", "a\nb", "m" * 300, "vit:" * 60]


@pytest.mark.parametrize("name", NAMES)
def test_a_project_name_is_one_wandb_accepts(name):
    validators = pytest.importorskip("wandb.sdk.artifacts._validators")
    project = _model(name).project
    assert validators.validate_project_name(project) == project
    import wandb
    assert wandb.Settings(project=project).project == project  # wandb.init's own check


def test_project_names_stay_as_they_were_for_names_wandb_already_took():
    assert _model("resnet50.tv2_in1k").project == "resnet50_tv2_in1k"
    assert _model("org/efficientnet-b4.ra2").project == "org_efficientnet_b4_ra2"
    assert _model("hf-hub:timm/vit.x").project == "hf_hub_timm_vit_x"


def test_long_names_that_share_a_start_get_distinct_projects():
    first, second = wandb_project_name("m" * 200 + "a"), wandb_project_name("m" * 200 + "b")
    assert first != second and len(first) == len(second) == WANDB_PROJECT_MAXLEN
