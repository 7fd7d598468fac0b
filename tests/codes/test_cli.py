"""The command-line contract: end-to-end training, outputs, evaluate/predict, W&B, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import train as train_cli

OUTPUT_FILES = [
    "config.yaml",
    "overrides.yaml",
    "train.log",
    "metrics.jsonl",
    "result.json",
    "figures/loss_curve.png",
    "figures/f1_curve.png",
    "figures/confusion_matrix.png",
    "checkpoints/best_model.pt",
    "checkpoints/last.pt",
]
EFFECTIVE_KEYS = {
    "model_name",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "scheduler",
    "scheduler_params",
    "criterion",
    "focal_alpha",
    "focal_gamma",
    "label_smoothing",
    "image_size",
    "batch_size",
    "mixed_precision",
    "amp_dtype",
    "patience",
    "epochs",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_dir, codes_dir, repo_root, tiny_values):
    """One real 2-epoch CPU run through `python codes/train.py`, shared by the tests below."""
    import os
    import subprocess
    import sys

    import yaml

    tmp = tmp_path_factory.mktemp("e2e")
    cfg = yaml.safe_load((codes_dir / "config_v2.yaml").read_text())
    cfg.update(tiny_values, data_dir=str(digits_dir), limit_samples=400, device="cpu")
    cfg_path = tmp / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    run_dir = tmp / "run"
    env = {
        **os.environ,
        "HPSYS_RUN_DIR": str(run_dir),
        "HPSYS_EXPERIMENT_ID": "exp-007",
        "WANDB_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "",  # the spec's CPU end-to-end run, on any machine
    }
    proc = subprocess.run(
        [sys.executable, "codes/train.py", "--config", str(cfg_path), "epochs=2", "lr=0.003"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, run_dir, cfg_path


@pytest.mark.slow
def test_end_to_end_outputs(trained):
    proc, run_dir, _ = trained
    assert proc.returncode == 0, proc.stderr
    for rel in OUTPUT_FILES:
        assert (run_dir / rel).is_file(), rel
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    for record in lines:
        assert set(record) >= {
            "epoch",
            "train_loss",
            "val_loss",
            "val_acc",
            "val_f1",
            "lr",
            "seconds",
        }
    result = json.loads((run_dir / "result.json").read_text())
    assert result["experiment_id"] == "exp-007"
    m = result["metrics"]
    assert m["epochs_run"] == 2 and 1 <= m["best_epoch"] <= 2
    assert m["final_val_f1"] == pytest.approx(lines[-1]["val_f1"])
    assert m["best_val_f1"] == pytest.approx(max(r["val_f1"] for r in lines))
    assert set(result["effective"]) >= EFFECTIVE_KEYS
    assert result["effective"]["lr"] == pytest.approx(0.003)
    assert result["effective"]["epochs"] == 2
    assert result["effective"]["device"] == "cpu"
    assert result["duration_s"] > 0
    assert Path(result["artifacts"]["best_checkpoint"]).is_file()
    assert "epoch 2/2" in (run_dir / "train.log").read_text()
    assert "lr: 0.003" in (run_dir / "overrides.yaml").read_text()


@pytest.mark.slow
def test_evaluate_and_predict_on_checkpoint(trained, capsys, tmp_path, digits_dir):
    import evaluate
    import predict
    import select_best_model

    proc, run_dir, _ = trained
    assert proc.returncode == 0, proc.stderr
    ckpt = str(run_dir / "checkpoints" / "best_model.pt")
    result = json.loads((run_dir / "result.json").read_text())
    capsys.readouterr()
    assert evaluate.main(["--checkpoint", ckpt, "--split", "val"]) == 0
    assert json.loads(capsys.readouterr().out)["f1"] == pytest.approx(
        result["metrics"]["best_val_f1"]
    )
    metrics_path = tmp_path / "m.json"
    assert evaluate.main(["--checkpoint", ckpt, "--split", "test", "--out", str(metrics_path)]) == 0
    assert json.loads(metrics_path.read_text())["images"] == 360
    out = tmp_path / "sub.csv"
    assert predict.main(["--checkpoint", ckpt, "--out", str(out), "--tta"]) == 0
    with (digits_dir / "sample_submission.csv").open() as fh:
        expected_ids = [r["ID"] for r in csv.DictReader(fh)]
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["ID"] for r in rows] == expected_ids
    assert {int(r["target"]) for r in rows} <= set(range(10))
    final = tmp_path / "final_model.pt"
    assert select_best_model.main(["--runs", str(run_dir.parent), "--dest", str(final)]) == 0
    assert final.is_file()
    assert evaluate.main(["--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


@pytest.mark.slow
def test_wandb_offline_run_takes_project_and_name_from_env(
    tiny_cfg, write_cfg, run_script, tmp_path
):
    tiny_cfg.update(limit_samples=100)
    env = {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(tmp_path / "wb"),
        "WANDB_PROJECT": "proj_from_env",
        "WANDB_NAME": "name_from_env",
        "WANDB_RUN_ID": "runid123",
        "WANDB_RUN_GROUP": "optimizer",
        "HPSYS_RUN_DIR": str(tmp_path / "run"),
    }
    (tmp_path / "wb").mkdir()
    proc = run_script(["codes/train.py", "--config", str(write_cfg(tiny_cfg))], env=env)
    assert proc.returncode == 0, proc.stderr
    wb = json.loads((tmp_path / "run" / "result.json").read_text())["wandb"]
    assert wb["project"] == "proj_from_env" and wb["name"] == "name_from_env"
    assert wb["run_id"] == "runid123" and wb["mode"] == "offline"
    runs = list((tmp_path / "wb" / "wandb").glob("offline-run-*-runid123"))
    assert len(runs) == 1
    blob = (runs[0] / "run-runid123.wandb").read_bytes()
    assert b"proj_from_env" in blob and b"name_from_env" in blob


def _bad(capsys, argv: list[str]) -> str:
    """Run train.py's main in-process; it must return 2 with exactly one stderr line."""
    code = train_cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


def test_bad_config_inputs(capsys, tmp_path, tiny_cfg, write_cfg):
    assert "config file not found" in _bad(capsys, ["--config", str(tmp_path / "none.yaml")])
    broken = tmp_path / "broken.yaml"
    broken.write_text("lr: 0.1\nepochs: [2\nbatch_size: 3\n")
    assert f"{broken}:" in _bad(capsys, ["--config", str(broken)])
    cfg = str(write_cfg(tiny_cfg))
    assert "did you mean: batch_size" in _bad(capsys, ["--config", cfg, "bach_size=8"])
    assert "expected an integer" in _bad(capsys, ["--config", cfg, "batch_size=abc"])


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("optimizer_name=Adamm", "did you mean: Adam"),
        ("scheduler_name=Cosine", "did you mean: CosineAnnealingLR"),
        ("criterion=FocalLos", "FocalLoss"),
        ("model_name=resnet10", "unknown timm model 'resnet10'"),
        ("model_name=resnet50d.nope", "unknown pretrained tag 'nope' of 'resnet50d' (did you"),
        ("model_name=resnet10t.c3", "did you mean: resnet10t.c3_in1k?"),
    ],
)
def test_unknown_names_list_close_matches(capsys, tiny_cfg, write_cfg, override, needle):
    err = _bad(capsys, ["--config", str(write_cfg(tiny_cfg)), override])
    assert needle in err
    assert err.startswith(f"error: override '{override}': {override.split('=')[0]}: "), err


def test_errors_found_while_building_name_the_config_file(capsys, tiny_cfg, write_cfg):
    tiny_cfg["optimizer_name"] = "Adamm"
    path = write_cfg(tiny_cfg)
    err = _bad(capsys, ["--config", str(path), "lr=0.01"])
    assert err.startswith(f"error: {path}: optimizer_name: unknown optimizer 'Adamm'"), err


def test_bad_data_inputs(capsys, tiny_cfg, write_cfg, tmp_path, digits_dir):
    cfg = str(write_cfg(tiny_cfg))
    missing = tmp_path / "nowhere"
    assert "data folder not found" in _bad(capsys, ["--config", cfg, f"data_dir={missing}"])
    (tmp_path / "empty").mkdir()
    assert "CSV not found" in _bad(capsys, ["--config", cfg, f"data_dir={tmp_path / 'empty'}"])
    err = _bad(capsys, ["--config", cfg, "num_classes=5"])
    assert "out of range" in err and "train.csv" in err
    assert "expected at most" in _bad(capsys, ["--config", cfg, "n_folds=1000"])
    bad_meta = tmp_path / "bad_meta"
    bad_meta.mkdir()
    (bad_meta / "train.csv").write_text("ID,target\na.png,0\n")
    (bad_meta / "meta.csv").write_text("label,name\n0,zero\n")
    err = _bad(capsys, ["--config", cfg, f"data_dir={bad_meta}"])
    assert "meta.csv: expected columns target,class_name" in err


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("norm_mean=[0.5,0.5]", "'norm_mean' expected 1 or 3 numbers"),
        ("norm_std=[0.2,0.2]", "'norm_std' expected 1 or 3 numbers > 0"),
        ("norm_std=[0.2,0,0.2]", "'norm_std' expected 1 or 3 numbers > 0"),
        ("scheduler_params.step_size=0", "expected a positive integer"),
        ("scheduler_params.total_steps=-3", "expected a positive integer"),
        ("focal_gamma=abc", "'focal_gamma' expected a number, got 'abc'"),
        ("focal_gamma=-0.5", "'focal_gamma' expected a number >= 0, got -0.5"),
        ("label_smooth=1.5", "'label_smooth' expected a number in [0, 1), got 1.5"),
        ("patience=-1", "'patience' expected an integer >= 0, got -1"),
        ("epochs=0", "'epochs' expected a positive integer, got 0"),
        ("lr=0", "'lr' expected a number > 0, got 0"),
        ("lr=-1e-3", "'lr' expected a number > 0"),
        ("val_split_ratio=1.0", "'val_split_ratio' expected a number in (0, 1)"),
        ("scheduler_params.warmup_epochs=10", "warmup_epochs: expected fewer than epochs (1)"),
    ],
)
def test_bad_values_are_refused_before_training(capsys, tiny_cfg, write_cfg, override, needle):
    assert needle in _bad(capsys, ["--config", str(write_cfg(tiny_cfg)), override])


def test_select_best_model_without_its_checkpoint(capsys, tmp_path):
    import select_best_model

    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "result.json").write_text(
        json.dumps({"metrics": {"best_val_f1": 0.5}, "artifacts": {"best_checkpoint": "x.pt"}})
    )
    argv = ["--runs", str(tmp_path / "runs"), "--dest", str(tmp_path / "final.pt")]
    assert select_best_model.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "best checkpoint is missing" in err


def test_select_best_model_reads_the_runners_runs_folder(capsys, tmp_path, monkeypatch):
    import select_best_model

    run = tmp_path / "runs" / "model" / "r1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best_model.pt").write_bytes(b"weights")
    (run / "result.json").write_text(
        json.dumps({"metrics": {"best_val_f1": 0.5}, "artifacts": {"best_checkpoint": "x.pt"}})
    )
    monkeypatch.chdir(tmp_path)
    assert select_best_model.main([]) == 0, capsys.readouterr().err
    assert (tmp_path / "checkpoints" / "final_model.pt").read_bytes() == b"weights"


def _closed_port() -> int:
    """A local TCP port nothing listens on: connecting is refused at once, as with no network."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("network", ["HF_HUB_OFFLINE", "unreachable hub"])
def test_pretrained_without_network_fails_fast_in_one_line(
    network, run_script, tiny_cfg, write_cfg, monkeypatch, tmp_path
):
    """No cached weights and no network: one line within seconds, not a minute of hub retries.
    A subprocess, so that the empty HF_HOME is read when huggingface_hub is first imported."""
    import time

    for name in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    env = {"HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch")}
    if network == "HF_HUB_OFFLINE":
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    tiny_cfg.update(model_name="resnet10t", pretrained=True)
    started = time.monotonic()
    proc = run_script(["codes/train.py", "--config", str(write_cfg(tiny_cfg))], env=env, timeout=60)
    elapsed = time.monotonic() - started
    err = proc.stderr.strip()
    assert proc.returncode == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "could not be downloaded" in err and "pretrained: false" in err, err
    assert ("HF_HUB_OFFLINE is set" if network == "HF_HUB_OFFLINE" else "no network") in err
    assert str(tmp_path / "hf") in err  # the cache it looked in
    # hub retries take a minute and more; importing torch and timm alone can take 15 s on a
    # busy 2-core machine, so the bound is about the retries, not the machine's speed
    assert elapsed < 40, f"took {elapsed:.1f}s"


def test_subprocess_exit_code_and_single_line(run_script, tmp_path):
    proc = run_script(["codes/train.py", "--config", str(tmp_path / "missing.yaml")])
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


def test_config_from_environment(run_script, tmp_path):
    proc = run_script(
        ["codes/train.py", "batch_size=abc"], env={"EXPERIMENT_CONFIG": "codes/config_v2.yaml"}
    )
    assert proc.returncode == 2 and "batch_size" in proc.stderr


@pytest.mark.slow
def test_launch_script_keeps_the_experiment_model(tiny_cfg, write_cfg, run_script, tmp_path):
    cfg = str(write_cfg(tiny_cfg))
    env = {"EXPERIMENT_CONFIG": cfg, "HPSYS_RUN_DIR": str(tmp_path / "run")}
    proc = run_script(["run_absolute.sh", cfg, "limit_samples=64"], env=env)
    assert proc.returncode == 0, proc.stderr
    resolved = (tmp_path / "run" / "config.yaml").read_text()
    assert "model_name: test_resnet" in resolved and "limit_samples: 64" in resolved


def test_wandb_id_group_and_tags_come_from_the_config_unless_the_env_sets_them(
    monkeypatch, tmp_path
):
    import wandb
    from trainer.tracking import Tracker

    monkeypatch.delenv("WANDB_MODE")
    block = {"project": "p", "mode": "offline", "group": "cfg_group", "tags": ["a", "b"]}
    try:
        tracker = Tracker({"wandb": {**block, "id": "cfgid42"}}, "run", tmp_path / "a")
        assert tracker.run.id == "cfgid42" and tracker.run.group == "cfg_group"
        assert tuple(tracker.run.tags) == ("a", "b")
        tracker.finish()
        assert tracker.describe()["run_id"] == "cfgid42"
        assert list((tmp_path / "a" / "wandb").glob("offline-run-*-cfgid42"))

        monkeypatch.setenv("WANDB_RUN_ID", "envid7")
        monkeypatch.setenv("WANDB_RUN_GROUP", "env_group")
        tracker = Tracker({"wandb": {**block, "id": "cfgid43"}}, "run", tmp_path / "b")
        assert tracker.run.id == "envid7" and tracker.run.group == "env_group"
        tracker.finish()
        assert tracker.describe()["run_id"] == "envid7"
    finally:
        wandb.teardown()


def test_wandb_failures_warn_and_never_stop_training(monkeypatch, capsys, tmp_path):
    import wandb
    from trainer.tracking import Tracker

    cfg = {"wandb": {"project": "p", "mode": "offline"}}
    monkeypatch.setenv("WANDB_MODE", "offline")

    def broken_init(**kwargs):
        raise RuntimeError("no\nserver")

    monkeypatch.setattr(wandb, "init", broken_init)
    tracker = Tracker(cfg, "run", tmp_path)
    tracker.log_epoch({"val_f1": 0.5}, step=1)
    tracker.finish()
    err = capsys.readouterr().err.strip()
    assert err == "warning: W&B init failed, training goes on without it (RuntimeError: no server)"
    assert tracker.describe()["mode"] == "disabled"

    class FlakyRun:
        def log(self, *args, **kwargs):
            raise OSError("disk full")

    tracker.run = FlakyRun()
    tracker.log_epoch({"val_f1": 0.5}, step=1)
    tracker.log_epoch({"val_f1": 0.6}, step=2)  # turned off after the first failure
    tracker.log_final({"best_val_f1": 0.6}, [0], [0], ["zero"], {})
    assert capsys.readouterr().err.count("warning: W&B log failed") == 1
    assert tracker.run is None
