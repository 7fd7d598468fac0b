"""Point 8: W&B online but unreachable: real training finishes offline, says how to sync."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from relkit import ROOT, ledger_rows, master_dict, run_cli, write_master

TINY = {"model_name": "test_resnet", "image_size": 32, "batch_size": 32, "epochs": 1,
        "limit_samples": 160, "cpu_threads": 2}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_unreachable_wandb_trains_offline_and_says_how_to_sync(tmp_path):
    data_dir = ROOT / "data"
    if not (data_dir / "train.csv").exists():
        data_dir = tmp_path / "data"
        subprocess.run([sys.executable, "codes/prepare_data.py", "--out", str(data_dir)],
                       cwd=ROOT, check=True)
    base = yaml.safe_load((ROOT / "codes" / "config_v2.yaml").read_text())
    base.update(TINY, data_dir=str(data_dir), output_dir=str(tmp_path / "outputs"))
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    master = master_dict(tmp_path, [{"epochs": 1}], base_config=str(tmp_path / "base.yaml"),
                         wandb_mode="online")
    master["models"] = [{"name": "test_resnet", "script": "python codes/train.py"}]
    master["experiment_categories"] = {"tiny": master["experiment_categories"].pop("fake")}
    config = write_master(tmp_path, master)
    result = run_cli(tmp_path, "--config", str(config), "--all", timeout=300,
                     WANDB_BASE_URL=f"http://127.0.0.1:{_closed_port()}",
                     WANDB_API_KEY="x" * 40, WANDB_INIT_TIMEOUT="5", HF_HUB_OFFLINE="1")
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = ledger_rows(tmp_path)
    assert row["status"] == "done" and row["metric"] is not None
    wandb = json.loads(row["result_json"])["wandb"]
    assert wandb["mode"] == "offline" and wandb["run_id"] == row["wandb_run_id"]
    log = Path(row["log_path"]).read_text()
    assert "W&B unreachable" in log and f"wandb sync {wandb['dir']}" in log
    summary = run_cli(tmp_path, "--config", str(config), "--summary")
    assert summary.returncode == 0, summary.stderr
    assert f"upload them with: wandb sync {wandb['dir']}" in " ".join(summary.stderr.split())
