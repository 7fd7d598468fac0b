"""Points 9-11: a full disk pauses the queue, hostile names stay names, OOM halves the batch."""

from __future__ import annotations

import json
import re
import shutil
import signal
import threading
import time
from pathlib import Path

from relkit import (
    ROOT,
    completions,
    ledger_rows,
    master_dict,
    run_cli,
    start_cli,
    wait_for,
    write_master,
)

from hyperparameter_system.app import api
from hyperparameter_system.run import executor
from hyperparameter_system.store.ledger import Ledger
from hyperparameter_system.ui import commands, console

SAFE = re.compile(r"^[A-Za-z0-9._+=-]+$")
HALVED = "retried with batch_size 16 after CUDA OOM"


def test_the_queue_resumes_when_space_returns_saying_each_once(tmp_path, monkeypatch):
    options = [{"fake.sleep": 0.1, "fake.metric": i / 10} for i in range(3)]
    config = write_master(tmp_path, master_dict(tmp_path, options, {"min_free_gb": 5}))
    settings = api.load(config)
    real_usage = shutil.disk_usage
    free = {"gb": 1.0, "back_at": None}

    def disk_usage(path):
        return real_usage(path)._replace(free=int(free["gb"] * 1e9))

    def space_returns():
        free["back_at"], free["gb"] = time.time(), 50.0

    said: list[str] = []
    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    monkeypatch.setattr(executor, "DISK_POLL_S", 0.05)
    monkeypatch.setattr(console, "warn", said.append)
    monkeypatch.setenv("FAKE_EVENTS", str(tmp_path / "events.jsonl"))
    timer = threading.Timer(1.0, space_returns)
    timer.start()
    result = commands.run(settings, api.select(settings), show=False)  # 4 slots wait at once
    timer.join()
    assert result.count("done") == 3
    assert [text.split(":")[0] for text in said] == ["paused", "resumed"], said
    assert "50.0 GB free" in said[1]
    starts = [json.loads(line)["start"] for line in (tmp_path / "events.jsonl").open()]
    assert len(starts) == 3 and min(starts) >= free["back_at"]


def test_low_disk_pauses_the_queue_with_a_message_and_ctrl_c_ends_it(tmp_path):
    config = write_master(tmp_path, master_dict(tmp_path, execution={"min_free_gb": 1e9}))
    proc = start_cli(tmp_path, "--config", str(config), "--all")
    out: list[str] = []
    for stream in (proc.stdout, proc.stderr):
        threading.Thread(target=lambda s=stream: out.extend(s), daemon=True).start()
    assert wait_for(lambda: "min_free_gb" in "".join(out), 20), out
    text = "".join(out)
    assert "paused" in text and "GB free" in text and text.count("paused:") == 1, text
    assert proc.poll() is None  # waiting for space, not failing
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 130
    assert [r["status"] for r in ledger_rows(tmp_path)] == ["pending"]
    assert not (tmp_path / "tc").exists() or not any((tmp_path / "tc").iterdir())
    assert not completions(tmp_path)


HOSTILE = "../x $(touch PWNED) `touch PWNED` \"q\" 'q'; é/ü"


def test_hostile_names_give_safe_files_and_no_shell(tmp_path):
    data = master_dict(tmp_path, [{"fake.sleep": 0.1, "+note": HOSTILE, "description": HOSTILE}])
    data["models"] = [{"name": f"m/{HOSTILE}",
                       "script": ["python", "tests/fakes/fake_train.py", f"--tag={HOSTILE}"]}]
    data["experiment_categories"] = {f"c/{HOSTILE}": data["experiment_categories"]["fake"]}
    config = write_master(tmp_path, data)
    result = run_cli(tmp_path, "--config", str(config), "--all")
    assert result.returncode == 0, result.stderr
    (row,) = ledger_rows(tmp_path)
    assert row["status"] == "done"
    for where in (ROOT, tmp_path, Path.cwd()):
        assert not list(where.rglob("PWNED*"))
    written = [p for p in tmp_path.rglob("*") if p.parent != tmp_path]
    tops = {p.resolve().relative_to(tmp_path).parts[0] for p in written}
    assert tops == {"runs", "tc"}, tops  # nothing escaped runs_dir or temp_config_dir
    assert all(SAFE.match(p.name) for p in written), [p.name for p in written]
    record = json.loads(Path(row["run_dir"], "record.json").read_text())
    assert record["argv"][-3] == f"--tag={HOSTILE}"  # passed as one argument, verbatim
    assert record["config"]["note"] == HOSTILE
    assert record["env"]["WANDB_RUN_GROUP"] == f"c/{HOSTILE}"


def test_oom_is_retried_with_half_the_batch(tmp_path):
    options = [{"+fake.oom_above": 16}]
    halving = {"retry_failed": 3, "retry_oom_halving": True}
    config = write_master(tmp_path, master_dict(tmp_path, options, halving))
    result = run_cli(tmp_path, "--config", str(config), "--all")
    assert result.returncode == 0, result.stderr
    (row,) = ledger_rows(tmp_path)
    assert row["status"] == "done" and row["attempts"] == 3  # 64 and 32 ran out of memory
    assert json.loads(row["result_json"])["effective"]["batch_size"] == 16
    # done under its option, but not silently at another batch size
    assert row["note"] == HALVED and row["batch_override"] == 16
    assert HALVED in re.sub(r"\s+", " ", result.stdout), result.stdout


def test_a_halved_batch_outlives_the_runner(tmp_path):
    options = [{"+fake.oom_above": 16}]
    halving = {"retry_failed": 1, "retry_oom_halving": True}
    config = write_master(tmp_path, master_dict(tmp_path, options, halving))
    assert run_cli(tmp_path, "--config", str(config), "--all").returncode == 1
    (row,) = ledger_rows(tmp_path)  # 64, then 32 ran out of memory; no retry left
    assert row["status"] == "failed" and row["attempts"] == 2 and row["batch_override"] == 16
    assert row["error"].endswith("(out of memory) (batch_size 32)"), row["error"]
    # a new runner goes on at 16, not back at 64
    assert run_cli(tmp_path, "--config", str(config), "--all").returncode == 0
    (row,) = ledger_rows(tmp_path)
    assert row["status"] == "done" and row["attempts"] == 3 and row["note"] == HALVED
    assert json.loads(Path(row["run_dir"], "record.json").read_text())["config"][
        "batch_size"] == 16
    Ledger(tmp_path / "l.db").reset([row["id"]])  # --rerun starts afresh, at the asked batch
    (row,) = ledger_rows(tmp_path)
    assert row["batch_override"] is None and row["note"] is None


def test_oom_without_halving_fails_as_out_of_memory(tmp_path):
    options = [{"+fake.oom_above": 16}]
    config = write_master(tmp_path, master_dict(tmp_path, options, {"retry_failed": 1}))
    assert run_cli(tmp_path, "--config", str(config), "--all").returncode == 1
    (row,) = ledger_rows(tmp_path)
    assert row["status"] == "failed" and row["attempts"] == 2
    assert "out of memory" in row["error"] and "CUDA out of memory" in row["log_tail"]
    assert json.loads(Path(row["run_dir"], "record.json").read_text())["config"][
        "batch_size"] == 64
