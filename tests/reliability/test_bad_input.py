"""Point 7: broken master configs, base configs and command lines exit 2 with one line that
names the place, and launch nothing; the loaders raise nothing but HpsysError."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relkit import ROOT, ledger_rows, master_dict, run_cli, write_master

from hyperparameter_system import experiment_runner
from hyperparameter_system.app.api import select
from hyperparameter_system.config.settings import load_settings
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.core.yamlfile import load_yaml
from hyperparameter_system.store.ledger import Ledger


def _set(path: str, value: Any):
    """A mutation of the good master config: `a.b.0.c` set to value (None deletes it)."""
    def mutate(data: dict) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        for part in parents:
            data = data[part]
        if value is None:
            del data[last]
        else:
            data[last] = value
    return mutate


def _text_ledger(data: dict) -> None:
    """system.ledger names a file that exists but is no SQLite database."""
    path = Path(data["system"]["ledger"]).with_name("notes.txt")
    path.write_text("not a database\n")
    data["system"]["ledger"] = str(path)


def _sqlite_ledger(*statements: str):
    """system.ledger names a ledger of this runner changed by `statements`."""
    def mutate(data: dict) -> None:
        path = Path(data["system"]["ledger"]).with_name("other.db")
        Ledger(path).ensure().close()
        with sqlite3.connect(path) as db:
            for statement in statements:
                db.execute(statement)
        data["system"]["ledger"] = str(path)
    return mutate


def _option_twice(data: dict) -> None:
    options = data["experiment_categories"]["fake"]["options"]
    options.append(dict(options[0]))


NAN, INF = float("nan"), float("inf")  # written by yaml.safe_dump as `.nan`, `.inf`


def _no_schema(change):
    """`change`, for a model whose script publishes no schema (`schema: null`)."""
    def mutate(data: dict) -> None:
        data["models"][0]["schema"] = None
        change(data)
    return mutate


def alias_bomb(levels: int = 9, key: str = "lol") -> str:
    """"Billion laughs": each level lists the one before nine times (9**levels leaves)."""
    lines = [f"{key}0: &{key}0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"{key}{i}: &{key}{i} [{', '.join([f'*{key}{i - 1}'] * 9)}]"
              for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


TWO_CATEGORY_BLOCKS = (  # the first block would be dropped without a word
    "system: {baseline: false}\nmodels: [{name: m1, script: python tests/fakes/fake_train.py}]\n"
    "experiment_categories:\n  optimizer: {options: [{name: SGD}]}\n"
    "experiment_categories:\n  fake: {options: [{fake.sleep: 0.1}]}\n")
TWO_OPTIMIZERS = (
    "models: [{name: m1, script: python tests/fakes/fake_train.py}]\n"
    "experiment_categories:\n"
    "  optimizer:\n    options: [{name: SGD, lr: 0.1}]\n"
    "  optimizer:\n    options: [{name: AdamW, lr: 0.001}]\n")

MASTER = {  # id: (mutation or raw text, what the message must name)
    "not-yaml": ("system: [unclosed\nmodels: 1\n", "master.yaml:"),
    "tab-indent": ("system:\n\tledger: x\n", "master.yaml:"),
    "empty": ("", "master.yaml"),
    "top-list": ("- 1\n- 2\n", "master.yaml"),
    "top-scalar": ("hello\n", "master.yaml"),
    "unknown-top": (_set("experiments", {}), "experiments"),
    "system-list": (_set("system", [1]), "system"),
    "system-unknown": (_set("system.ledgr", "x.db"), "system.ledgr"),
    "baseline-str": (_set("system.baseline", "yes please"), "system.baseline"),
    "wandb-mode": (_set("system.wandb_mode", "sometimes"), "system.wandb_mode"),
    "metric-mode": (_set("system.metric_mode", "median"), "system.metric_mode"),
    "ledger-unwritable": (_set("system.ledger", "/proc/nope/x.db"), "master.yaml: system.ledger"),
    "ledger-not-sqlite": (_text_ledger, "master.yaml: system.ledger"),
    "ledger-newer-version": (_sqlite_ledger("PRAGMA user_version=7"), "ledger version 7"),
    "ledger-table-renamed": (_sqlite_ledger("ALTER TABLE experiments RENAME TO kept"),
                             "has no experiments table"),
    "base-missing": (_set("system.base_config", "nope/base.yaml"), "base.yaml"),
    "models-missing": (_set("models", None), "models"),
    "models-empty": (_set("models", []), "models"),
    "models-mapping": (_set("models", {"m1": "x"}), "models"),
    "model-str": (_set("models.0", "m1"), "models[0]"),
    "model-no-name": (_set("models.0.name", None), "models[0]"),
    "model-no-script": (_set("models.0.script", None), "models[0]"),
    "script-empty": (_set("models.0.script", " "), "models[0].script"),
    "script-quote": (_set("models.0.script", 'python "tests/fakes'), "models[0].script"),
    "script-missing": (_set("models.0.script", "python tests/fakes/nope.py"), "models[0].script"),
    "command-missing": (_set("models.0.script", "no-such-cmd-xyz --go"), "models[0].script"),
    "not-executable": (_set("models.0.script", "tests/fakes/base.yaml"), "models[0].script"),
    "model-unknown": (_set("models.0.scrpit", "x"), "models[0].scrpit"),
    "model-twice": (lambda d: d["models"].append(dict(d["models"][0])), "models[1].name"),
    "model-base-missing": (_set("models.0.base_config", "nope.yaml"), "models[0].base_config"),
    "categories-missing": (_set("experiment_categories", None), "experiment_categories"),
    "options-empty": (_set("experiment_categories.fake.options", []), "fake.options"),
    "options-mapping": (_set("experiment_categories.fake.options", {"a": 1}), "fake.options"),
    "option-str": (_set("experiment_categories.fake.options.0", "sleep"), "options[0]"),
    "option-key-typo": (_set("experiment_categories.fake.options.0",
                             {"fake.sleeep": 1}), "options[0].fake.sleeep"),
    "optimizer-bad-lr": (_set("experiment_categories.optimizer",
                              {"options": [{"name": "SGD", "lr": "fast"}]}),
                         "optimizer.options[0].lr"),
    "optimizer-unknown": (_set("experiment_categories.optimizer",
                               {"options": [{"name": "SGD", "momentun": 0.9}]}),
                          "optimizer.options[0].momentun"),
    "option-twice": (_option_twice, "fake.options[1]: the same option as options[0]"),
    "category-unknown-key": (_set("experiment_categories.fake.enabeld", True), "fake.enabeld"),
    "max-parallel-0": (_set("execution.max_parallel", 0), "execution.max_parallel"),
    "max-parallel-str": (_set("execution.max_parallel", "four"), "execution.max_parallel"),
    "timeout-negative": (_set("execution.experiment_timeout", -1), "experiment_timeout"),
    "retry-negative": (_set("execution.retry_failed", -2), "execution.retry_failed"),
    "gpus-all": (_set("execution.gpus", "all"), "execution.gpus"),
    "gpus-negative": (_set("execution.gpus", [-1]), "execution.gpus"),
    "executor-unknown": (_set("execution.executor", "kubernetes"), "execution.executor"),
    "min-free-negative": (_set("execution.min_free_gb", -1), "execution.min_free_gb"),
    "stale-zero": (_set("execution.stale_after_s", 0), "execution.stale_after_s"),
    "execution-unknown": (_set("execution.max_paralel", 2), "execution.max_paralel"),
    "overrides-unknown-scheduler": (_set("system.overrides", ["scheduler_name=Cosine"]),
                                    "system.overrides"),
    "overrides-lr-not-number": (_set("system.overrides", ["lr=fast"]), "lr=fast"),
    "overrides-epochs-negative": (_set("system.overrides", ["epochs=-1"]), "epochs=-1"),
    "overrides-lr-nan": (_set("system.overrides", ["lr=nan"]), "lr=nan"),
    "not-utf8": (b"system: {ledger: \xff\xfe}\n", "master.yaml"),
    # NaN and infinity where a number is expected (NaN passes every `<` check)
    "timeout-nan": (_set("execution.experiment_timeout", NAN), "execution.experiment_timeout"),
    "timeout-inf": (_set("execution.experiment_timeout", INF), "execution.experiment_timeout"),
    "min-free-nan": (_set("execution.min_free_gb", NAN), "execution.min_free_gb"),
    "min-free-inf": (_set("execution.min_free_gb", INF), "execution.min_free_gb"),
    "heartbeat-nan": (_set("execution.heartbeat_s", NAN), "execution.heartbeat_s"),
    "stale-inf": (_set("execution.stale_after_s", INF), "execution.stale_after_s"),
    "stop-grace-nan": (_set("execution.stop_grace_s", NAN), "execution.stop_grace_s"),
    "cpus-nan": (_set("execution.cpus_per_experiment", NAN), "execution.cpus_per_experiment"),
    "max-parallel-inf": (_set("execution.max_parallel", INF), "execution.max_parallel"),
    "ray-resource-nan": (_set("execution.ray_resources", {"A100": NAN}),
                         "execution.ray_resources"),
    "option-lr-nan": (_set("experiment_categories.optimizer",
                           {"options": [{"name": "SGD", "lr": NAN}]}),
                      "optimizer.options[0].lr"),
    "option-lr-inf": (_set("experiment_categories.optimizer",
                           {"options": [{"name": "SGD", "lr": INF}]}),
                      "optimizer.options[0].lr"),
    # issue 20: NaN and infinity refused for a script that publishes no schema too
    "no-schema-option-nan": (_no_schema(_set("experiment_categories.optimizer",
                                             {"options": [{"name": "AdamW", "lr": NAN}]})),
                             "optimizer.options[0].lr: expected a finite number"),
    "no-schema-option-inf-text": (_no_schema(_set("experiment_categories.optimizer",
                                                  {"options": [{"name": "AdamW",
                                                                "lr": "-inf"}]})),
                                  "optimizer.options[0].lr: expected a finite number"),
    "no-schema-yaml-option-nan": (_no_schema(_set("experiment_categories.fake.options.0",
                                                  {"lr": NAN})),
                                  "options[0].lr: expected a finite"),
    "no-schema-nested-inf": (_no_schema(_set("experiment_categories.fake.options.0",
                                             {"norm_mean": [0.5, INF, 0.5]})),
                             "options[0].norm_mean: expected a finite"),
    "no-schema-overrides-nan": (_no_schema(_set("system.overrides", ["lr=.nan"])),
                                "lr=.nan': expected a finite number"),
    "no-schema-overrides-inf-text": (_no_schema(_set("system.overrides", ["lr=Infinity"])),
                                     "lr=Infinity': expected a finite number"),
    "option-warmup-over-epochs": (_set("experiment_categories.fake.options.0",
                                       {"+warmup_epochs": 3}),
                                  "fake.options[0]: warmup_epochs: expected fewer than epochs"),
    "overrides-model-name": (_set("system.overrides", ["model_name=resnet18"]),
                             "system.overrides[0] model_name=resnet18: model_name comes from"),
    # a key given twice: both lines named
    "two-category-blocks": (TWO_CATEGORY_BLOCKS,
                            "master.yaml:5: experiment_categories: duplicate key, also at line 3"),
    "two-optimizers": (TWO_OPTIMIZERS, "master.yaml:5: experiment_categories.optimizer: "
                                       "duplicate key, also at line 3"),
    "model-name-twice": ("models:\n  - name: m1\n    name: m2\n    script: ./x.sh\n",
                         "master.yaml:3: models[0].name: duplicate key, also at line 2"),
    "alias-bomb": (alias_bomb(), "aliases expand to more than"),
}

BASE = {  # the model's base config file: text, and what the message must name
    "base-nan": ("lr: .nan\nfake: {metric: 0.5}\n", "base.yaml:1: lr: expected a finite"),
    "base-inf-nested": ("lr: 0.1\nfake: {metric: -.inf}\n",
                        "base.yaml:2: fake.metric: expected a finite"),
    "base-not-yaml": ("lr: [0.1\n", "base.yaml:"),
    "base-list": ("- lr\n", "base.yaml"),
    "base-empty": ("", "base.yaml"),
    "base-binary": (b"\x00\xff\xfe", "base.yaml"),
    "base-key-twice": ("lr: 0.1\nepochs: 2\nlr: 0.5\n",
                       "base.yaml:3: lr: duplicate key, also at line 1"),
    "base-alias-bomb": (alias_bomb(), "base.yaml:1: YAML error: aliases expand"),
}

ARGV = {  # command lines over the good master config, and what the message must name
    "unknown-model": (["--models", "nope"], "--models nope"),
    "unknown-category": (["--categories", "fak"], "--categories fak"),
    "unknown-flag": (["--all", "--bogus"], "--bogus"),
    "set-no-equals": (["--all", "--set", "batch_size"], "batch_size"),
    "set-unknown-key": (["--all", "--set", "batch_sise=8"], "batch_sise"),
    "set-unknown-optimizer": (["--all", "--set", "optimizer_name=Adamm"],
                              "--set optimizer_name=Adamm"),
    "set-unknown-criterion": (["--all", "--set", "criterion=focall"], "--set criterion=focall"),
    "set-lr-not-number": (["--all", "--set", "lr=abc"], "--set lr=abc"),
    "set-batch-not-number": (["--all", "--set", "batch_size=abc"], "expected a number"),
    "set-bool-not-bool": (["--all", "--set", "pretrained=maybe"], "expected true or false"),
    "set-lr-nan": (["--all", "--set", "lr=nan"], "--set lr=nan"),
    "set-lr-inf": (["--all", "--set", "lr=inf"], "--set lr=inf"),
    # issue 20 item 8: silently dropped or silently meaning "all" before
    "set-model-name": (["--all", "--set", "model_name=resnet18"],
                       "--set model_name=resnet18: model_name comes from each entry of models:"),
    "set-model-name-dotted": (["--all", "--set", "++model_name.kind=x"], "model_name comes from"),
    "set-limit-samples-0": (["--all", "--set", "+limit_samples=0"],
                            "--set +limit_samples=0 (on"),
    # issue 20 item 5: what the engine refuses by its cross-key rules, refused before launch
    "set-val-split-0": (["--all", "--set", "val_split_ratio=0"], "'val_split_ratio' expected"),
    "set-val-split-1": (["--all", "--set", "val_split_ratio=1"], "unless n_folds >= 2"),
    "set-warmup-over-epochs": (["--all", "--set", "+warmup_epochs=5", "--set", "epochs=2"],
                               "warmup_epochs: expected fewer than epochs (2), got 5"),
    "set-scheduler-warmup": (["--all", "--set", "+scheduler_params.warmup_epochs=2"],
                             "scheduler_params.warmup_epochs: expected fewer than epochs"),
    "set-seed-negative": (["--all", "--set", "random_seed=-1"], "--set random_seed=-1"),
    "set-dynamic-offline": (["--all", "--set", "++dynamic_augmentation.enabled=true", "--set",
                             "++online_augmentation=false"], "online_augmentation: false, but"),
    "set-fake-nan": (["--all", "--set", "fake.metric=nan"], "NaN or infinity"),  # no schema key
    "set-fake-inf-list": (["--all", "--set", "norm_std=[0.5, .inf, 0.5]"], "NaN or infinity"),
    "set-epochs-negative": (["--all", "--set", "epochs=-1"], "--set epochs=-1"),
    "set-batch-negative": (["--all", "--set", "batch_size=-5"], "--set batch_size=-5"),
    "set-image-size-0": (["--all", "--set", "image_size=0"], "--set image_size=0"),
    "executor-choice": (["--all", "--executor", "kubernetes"], "kubernetes"),
    "nothing-to-do": ([], "nothing to do"),
    "config-missing": (["--config", "does/not/exist.yaml", "--all"], "exist.yaml"),
    # refused before anything runs: a long matrix must not end in an error about its report
    "export-format": (["--all", "--export", "pdf", "r.pdf"], "--export pdf"),
    "export-format-dry": (["--dry-run", "--all", "--export", "pdf", "r.pdf"], "--export pdf"),
    "export-unwritable": (["--all", "--export", "html", "/proc/nope/r.html"], "/proc/nope"),
    "export-into-proc": (["--all", "--export", "html", "/proc/r.html"], "/proc/r.html"),
    "export-under-a-file": (["--all", "--export", "md", "/etc/hostname/r.md"], "/etc/hostname"),
    "export-a-folder": (["--all", "--export", "csv", "/tmp"], "expected a file path"),
    "plots-unwritable": (["--all", "--plots", "/proc/nope"], "--plots /proc/nope"),
    "plots-a-file": (["--all", "--plots", "/etc/hostname"], "expected a folder"),
    "export-ledger-unwritable": (["--export-ledger", "/proc/nope/l.csv"], "--export-ledger"),
    "plots-dash": (["--all", "--plots", "-"], "--plots -: expected a folder"),
    "two-stdouts": (["--export", "json", "-", "--export-ledger", "-"],
                    "only one output can be standard output"),
}


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "out.fifo")
    return tmp / "out.fifo"


def _link(tmp: Path, to: Path) -> Path:
    (tmp / "link.out").symlink_to(to)
    return tmp / "link.out"


def _socket(tmp: Path) -> Path:
    with socket.socket(socket.AF_UNIX) as sock:  # the bound name stays after close
        sock.bind(str(tmp / "out.sock"))
    return tmp / "out.sock"


def _device(tmp: Path) -> Path:
    """A character device of our own (/dev/null's numbers) where mknod is allowed; else the
    case is skipped. Never the real /dev/null: code that regressed would replace it, as root,
    for the whole machine."""
    try:
        os.mknod(tmp / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError:
        pytest.skip("mknod is not allowed here")
    return tmp / "null"


SPECIAL = {  # issue 20: real special files in tmp_path, refused before anything runs, left alone
    "export-fifo": (lambda t: ["--export", "csv", str(_fifo(t))], "a FIFO"),
    "export-link-to-fifo": (lambda t: ["--export", "md", str(_link(t, _fifo(t)))], "a FIFO"),
    "export-ledger-fifo": (lambda t: ["--export-ledger", str(_fifo(t))], "a FIFO"),
    "export-socket": (lambda t: ["--export", "json", str(_socket(t))], "a socket"),
    "export-device": (lambda t: ["--export", "html", str(_device(t))], "a character device"),
    "export-ledger-device": (lambda t: ["--export-ledger", str(_device(t))],
                             "a character device"),
    "export-link-to-device": (lambda t: ["--export", "html", str(_link(t, _device(t)))],
                              "a character device"),
    "export-link-to-folder": (lambda t: ["--export", "csv", str(_link(t, t))],
                              "expected a file path"),
    "plots-link-to-fifo": (lambda t: ["--plots", str(_link(t, _fifo(t)))], "expected a folder"),
}


@pytest.mark.parametrize("case", SPECIAL)
def test_a_special_output_file_is_refused_and_left_alone(case, tmp_path, cli):
    make, where = SPECIAL[case]
    config = write_master(tmp_path, master_dict(tmp_path))
    args = make(tmp_path)
    before = {p.name: (os.lstat(p).st_mode, p.is_symlink()) for p in tmp_path.iterdir()}
    _check(*cli("--config", str(config), "--all", *args), where, tmp_path)
    assert {p.name: (os.lstat(p).st_mode, p.is_symlink()) for p in tmp_path.iterdir()} == before


@pytest.fixture
def cli(tmp_path, capsys, monkeypatch):
    """The runner's main() in this process (fast); it installs a SIGTERM handler: restored."""
    monkeypatch.setattr(signal, "signal", lambda *a: None)

    def run(*argv: str) -> tuple[int, str]:
        code = experiment_runner.main(argv)
        return code, capsys.readouterr().err

    return run


def _nothing_launched(tmp: Path) -> None:
    assert not [r for r in ledger_rows(tmp) if r["status"] in ("running", "done")]
    assert not list((tmp / "tc").glob("*")) if (tmp / "tc").exists() else True
    assert not (tmp / "runs").exists() or not list((tmp / "runs").rglob("*"))
    assert not (tmp / "events.jsonl").exists()


def _check(code: int, err: str, where: str, tmp: Path) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert where in lines[0], lines[0]
    _nothing_launched(tmp)


@pytest.mark.parametrize("case", MASTER)
def test_broken_master_config(case, tmp_path, cli):
    change, where = MASTER[case]
    path = tmp_path / "master.yaml"
    if isinstance(change, bytes):
        path.write_bytes(change)
    elif isinstance(change, str):
        path.write_text(change)
    else:
        data = master_dict(tmp_path)
        change(data)
        write_master(tmp_path, data)
    _check(*cli("--config", str(path), "--all"), where, tmp_path)


@pytest.mark.parametrize("case", BASE)
def test_broken_base_config(case, tmp_path, cli):
    text, where = BASE[case]
    base = tmp_path / "base.yaml"
    base.write_bytes(text if isinstance(text, bytes) else text.encode())
    config = write_master(tmp_path, master_dict(tmp_path, base_config=str(base)))
    _check(*cli("--config", str(config), "--all"), where, tmp_path)


@pytest.mark.parametrize("case", ARGV)
def test_broken_command_line(case, tmp_path, cli):
    args, where = ARGV[case]
    config = write_master(tmp_path, master_dict(tmp_path))
    _check(*cli("--config", str(config), *args), where, tmp_path)


@pytest.mark.parametrize("case", ["not-yaml", "script-missing", "max-parallel-0"])
def test_the_real_cli_prints_one_line_and_exits_2(case, tmp_path):
    data = master_dict(tmp_path)
    change, where = MASTER[case]
    if isinstance(change, str):
        config = tmp_path / "master.yaml"
        config.write_text(change)
    else:
        change(data)
        config = write_master(tmp_path, data)
    proc = run_cli(tmp_path, "--config", str(config), "--all")
    _check(proc.returncode, proc.stderr, where, tmp_path)


def test_an_option_listed_twice_is_told_at_the_second_ones_line(tmp_path, cli):
    data = master_dict(tmp_path)
    _option_twice(data)
    config = write_master(tmp_path, data)
    line = [i for i, text in enumerate(config.read_text().splitlines(), 1)
            if "fake.sleep" in text][1]
    _check(*cli("--config", str(config), "--all"),
           f"{config}:{line}: experiment_categories.fake.options[1]", tmp_path)


def test_a_seed_that_is_no_integer_is_told_when_repeats_count_up_from_it(tmp_path, cli):
    base = tmp_path / "base.yaml"
    base.write_text((ROOT / "tests" / "fakes" / "base.yaml").read_text()
                    .replace("random_seed: 42", "random_seed: abc"))
    data = master_dict(tmp_path, execution={"repeats": 2}, base_config=str(base))
    code, err = cli("--config", str(write_master(tmp_path, data)), "--all")
    line = next(i for i, text in enumerate(base.read_text().splitlines(), 1)
                if text.startswith("random_seed"))
    _check(code, err, f"{base}:{line}: random_seed: expected an integer", tmp_path)


# -- arbitrary input ------------------------------------------------------------------------
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
NASTY = ["[" * 2000, "&a [*a]", "!!python/name:os.system", "a: !!binary x", "{a: 1, a: 2}",
         "? [a]\n: 1", "a: &x {b: *x}", "models: [{name: [1]}]", "\ufeffsystem: {}"]
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _only_hpsys_errors(path: Path) -> None:
    for load in (lambda p: load_yaml(p), load_settings):
        with contextlib.suppress(HpsysError):
            load(path)


@FUZZ
@given(text=st.text(max_size=300) | st.sampled_from(NASTY))
def test_arbitrary_yaml_text(tmp_path, text):
    path = tmp_path / "any.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _only_hpsys_errors(path)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, prefix + (index,))
    return out


@FUZZ
@given(data=st.data())
def test_arbitrary_structures_in_the_master_config(tmp_path, data):
    doc = master_dict(tmp_path, [{"fake.sleep": 0.1}, {"fake.metric": 0.2}])
    doc["experiment_categories"]["optimizer"] = {"options": [{"name": "SGD", "lr": 0.1}]}
    doc["models"][0]["base_config"] = "tests/fakes/base.yaml"
    path = data.draw(st.sampled_from(_paths(doc)[1:]))
    value = data.draw(VALUES)
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    target = tmp_path / "master.yaml"
    try:
        target.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    except UnicodeEncodeError:  # lone surrogates cannot be written as UTF-8
        return
    _only_hpsys_errors(target)


@FUZZ
@given(base=st.dictionaries(st.sampled_from(["fake", "batch_size", "lr", "wandb", "x.y", ""])
                            | st.text(max_size=8), VALUES, max_size=6))
def test_arbitrary_base_configs(tmp_path, base):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base, allow_unicode=True),
                                        encoding="utf-8", errors="surrogatepass")
    doc = master_dict(tmp_path, [{"fake.sleep": 0.1}, {"+extra.key": 1}],
                      base_config=str(tmp_path / "base.yaml"))
    doc["experiment_categories"]["batch_size"] = {"options": [{"batch_size": 16}]}
    config = write_master(tmp_path, doc)
    with contextlib.suppress(HpsysError):
        select(load_settings(config))  # the matrix is built before anything is launched


DISABLED = {  # a disabled entry's problem: silent until it is picked, then told as any other
    "model-script": (lambda d: d["models"].append(
        {"name": "m2", "enabled": False, "script": "./no_such.sh"}),
        ["--models", "m2"], "models[1].script"),
    "model-base": (lambda d: d["models"].append(
        {"name": "m2", "enabled": False, "script": "python tests/fakes/fake_train.py",
         "base_config": "nope/base.yaml"}), ["--models", "m2"], "base.yaml"),
    "builtin-option": (lambda d: d["experiment_categories"].update(
        {"optimizer": {"enabled": False, "options": [{"name": "SGD", "lr": "fast"}]}}),
        ["--categories", "optimizer"], "experiment_categories.optimizer.options[0].lr"),
    "yaml-only-typo": (lambda d: d["experiment_categories"].update(
        {"reg": {"enabled": False, "options": [{"weight_decya": 0.1}]}}),
        ["--categories", "reg"], "weight_decya"),
}


@pytest.mark.parametrize("case", DISABLED)
def test_a_disabled_entry_is_checked_when_picked(case, tmp_path, cli):
    mutate, picked, where = DISABLED[case]
    data = master_dict(tmp_path)
    mutate(data)
    config = write_master(tmp_path, data)
    code, err = cli("--config", str(config), "--dry-run", "--all")
    assert code == 0, err  # not picked: the enabled matrix runs as before
    _check(*cli("--config", str(config), *picked), where, tmp_path)
