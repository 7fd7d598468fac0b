#!/usr/bin/env python3
"""A stand-in training script that honours the runner -> script contract without torch.

It records its argv, environment and config in $HPSYS_RUN_DIR/record.json, appends a
start/end line to $FAKE_EVENTS (when set), and behaves as the config's `fake` block says:
sleep, exit_code, signal, segfault, no_result, oom_above (batch size), metric.
"""

import json
import os
import signal
import sys
import time

import yaml


def main() -> int:
    argv = sys.argv[1:]
    path = argv[argv.index("--config") + 1] if "--config" in argv else os.environ.get(
        "EXPERIMENT_CONFIG")
    with open(path, encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    fake = config.get("fake") or {}
    run_dir = os.environ["HPSYS_RUN_DIR"]
    os.makedirs(run_dir, exist_ok=True)
    events = os.environ.get("FAKE_EVENTS")
    started = time.time()
    record = {"argv": sys.argv, "cwd": os.getcwd(), "config_path": path, "config": config,
              "env": {k: v for k, v in os.environ.items()
                      if k.startswith(("WANDB_", "HPSYS_", "CUDA_", "EXPERIMENT_", "OMP_"))}}
    with open(os.path.join(run_dir, "record.json"), "w", encoding="utf-8") as fh:
        json.dump(record, fh)
    print(f"fake training {os.environ.get('WANDB_NAME')}", flush=True)
    if fake.get("oom_above") and config.get("batch_size", 0) > fake["oom_above"]:
        print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", flush=True)
        return 1
    steps = max(1, int(fake.get("epochs", 2)))
    for epoch in range(1, steps + 1):
        time.sleep(float(fake.get("sleep", 0)) / steps)
        with open(os.path.join(run_dir, "metrics.jsonl"), "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.0 / epoch,
                                 "val_acc": 0.5, "val_f1": float(fake.get("metric", 0.5)),
                                 "lr": config.get("lr"), "seconds": 0.01}) + "\n")
    if fake.get("segfault"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if fake.get("signal"):
        os.kill(os.getpid(), int(fake["signal"]))
    if fake.get("exit_code"):
        print("failing on purpose", flush=True)
        return int(fake["exit_code"])
    if not fake.get("no_result"):
        metric = float(fake.get("metric", 0.5))
        result = {"experiment_id": os.environ.get("HPSYS_EXPERIMENT_ID"),
                  "metrics": {"best_val_f1": metric, "best_epoch": steps, "epochs_run": steps,
                              "final_val_f1": metric, "final_val_acc": metric,
                              "final_val_loss": 1 - metric},
                  "duration_s": time.time() - started,
                  "wandb": {"project": os.environ.get("WANDB_PROJECT"),
                            "name": os.environ.get("WANDB_NAME"),
                            "run_id": os.environ.get("WANDB_RUN_ID"),
                            "mode": os.environ.get("WANDB_MODE"), "dir": None},
                  "effective": {"batch_size": config.get("batch_size"), "lr": config.get("lr")}}
        tmp = os.path.join(run_dir, "result.json.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(result, fh)
        os.replace(tmp, os.path.join(run_dir, "result.json"))
    if events:
        with open(events, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"id": os.environ.get("HPSYS_EXPERIMENT_ID"), "start": started,
                                 "end": time.time(), "pid": os.getpid(),
                                 "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
