#!/usr/bin/env python3
"""A stand-in training script that honours the runner -> script contract without torch.

It records its argv, environment and config in $HPSYS_RUN_DIR/record.json, appends a
start/end line to $FAKE_EVENTS (when set), and behaves as the config's `fake` block says:
sleep, exit_code, signal, segfault, no_result, oom_above (batch size), metric; a learning curve
(`curve`: val_f1 per epoch, `epoch_s`: seconds per epoch). At each epoch end it honours the
runner's $HPSYS_RUN_DIR/stop_request.json (result status "pruned", exit 0) unless `ignore_stop`.
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
    curve = [float(v) for v in fake.get("curve") or ()]
    steps = len(curve) if curve else max(1, int(fake.get("epochs", 2)))
    pause = float(fake["epoch_s"]) if "epoch_s" in fake else float(fake.get("sleep", 0)) / steps
    stop_request = os.path.join(run_dir, "stop_request.json")
    honour = not fake.get("ignore_stop")
    f1 = float(fake.get("metric", 0.5))
    for epoch in range(1, steps + 1):
        # a request that comes while an epoch trains ends the run at the last complete epoch
        # (the runner decides on a metrics line just after the script has moved on)
        ends = time.monotonic() + pause
        while time.monotonic() < ends:
            if honour and epoch > 1 and os.path.exists(stop_request):
                write_result(run_dir, config, curve[:epoch - 1] or [f1], epoch - 1, started,
                             "pruned")
                return 0
            time.sleep(min(0.05, max(0.0, ends - time.monotonic())))
        f1 = curve[epoch - 1] if curve else float(fake.get("metric", 0.5))
        with open(os.path.join(run_dir, "metrics.jsonl"), "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.0 / epoch,
                                 "val_acc": 0.5, "val_f1": f1,
                                 "lr": config.get("lr"), "seconds": 0.01}) + "\n")
        if honour and os.path.exists(stop_request):
            write_result(run_dir, config, curve[:epoch] or [f1], epoch, started, "pruned")
            return 0
    if fake.get("segfault"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if fake.get("signal"):
        os.kill(os.getpid(), int(fake["signal"]))
    if fake.get("exit_code"):
        print("failing on purpose", flush=True)
        return int(fake["exit_code"])
    if not fake.get("no_result"):
        write_result(run_dir, config, curve or [float(fake.get("metric", 0.5))], steps, started)
    if events:
        with open(events, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"id": os.environ.get("HPSYS_EXPERIMENT_ID"), "start": started,
                                 "end": time.time(), "pid": os.getpid(),
                                 "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\n")
    return 0


def write_result(run_dir, config, values, epochs, started, status=None):
    """result.json: the best and the last of `values` (val_f1 per epoch, or the one metric)."""
    best, final = max(values), values[-1]
    result = {"experiment_id": os.environ.get("HPSYS_EXPERIMENT_ID"),
              "metrics": {"best_val_f1": best,
                          "best_epoch": values.index(best) + 1 if len(values) > 1 else epochs,
                          "epochs_run": epochs, "final_val_f1": final, "final_val_acc": final,
                          "final_val_loss": 1 - final},
              "duration_s": time.time() - started,
              "wandb": {"project": os.environ.get("WANDB_PROJECT"),
                        "name": os.environ.get("WANDB_NAME"),
                        "run_id": os.environ.get("WANDB_RUN_ID"),
                        "mode": os.environ.get("WANDB_MODE"), "dir": None},
              "effective": {"batch_size": config.get("batch_size"), "lr": config.get("lr")}}
    if status:
        result["status"] = status
    tmp = os.path.join(run_dir, "result.json.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os.replace(tmp, os.path.join(run_dir, "result.json"))


if __name__ == "__main__":
    sys.exit(main())
