#!/usr/bin/env python3
"""A stand-in training script that honours the runner -> script contract without torch.

It records its argv, environment and config in $HPSYS_RUN_DIR/record.json, appends a
start/end line to $FAKE_EVENTS (when set), and behaves as the config's `fake` block says:
sleep, exit_code, signal, segfault, no_result, oom_above (batch size), metric; a learning curve
(`curve`: val_f1 per epoch, `epoch_s`: seconds per epoch). At each epoch end it honours the
runner's $HPSYS_RUN_DIR/stop_request.json (result status "pruned", exit 0) unless `ignore_stop`.
With `resumable`, each epoch writes ckpt.json and resume.json, and HPSYS_RESUME (a ckpt.json)
goes on after its epoch (result.json `resumed_from_epoch`).
"""

import json
import os
import random
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
    level = float(fake.get("metric", 0.5)) + seed_noise(config, fake)
    f1 = level
    first = resume_from(run_dir) + 1 if fake.get("resumable") else 1
    for epoch in range(first, steps + 1):
        # a request that comes while an epoch trains ends the run at the last complete epoch
        # (the runner decides on a metrics line just after the script has moved on)
        ends = time.monotonic() + pause
        while time.monotonic() < ends:
            if honour and epoch > 1 and os.path.exists(stop_request):
                write_result(run_dir, config, curve[:epoch - 1] or [f1], epoch - 1, started,
                             "pruned")
                return 0
            time.sleep(min(0.05, max(0.0, ends - time.monotonic())))
        f1 = curve[epoch - 1] if curve else level
        with open(os.path.join(run_dir, "metrics.jsonl"), "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.0 / epoch,
                                 "val_acc": 0.5, "val_f1": f1,
                                 "lr": config.get("lr"), "seconds": 0.01}) + "\n")
        if fake.get("resumable"):
            save_point(run_dir, epoch)
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
        write_result(run_dir, config, curve or [level], steps, started,
                     resumed=first - 1 if first > 1 else None)
    if events:
        with open(events, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"id": os.environ.get("HPSYS_EXPERIMENT_ID"), "start": started,
                                 "end": time.time(), "pid": os.getpid(),
                                 "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\n")
    return 0


def seed_noise(config, fake):
    """`noise` (an sd): a score moved by the seed alone (shared by every option, what pairing
    cancels) and by the seed and the option's metric together, half the variance each."""
    sd = float(fake.get("noise", 0))
    if not sd:
        return 0.0
    seed = config.get("random_seed", 0)
    shared = random.Random(f"shared-{seed}").gauss(0, sd / 2 ** 0.5)
    return shared + random.Random(f"own-{seed}-{fake.get('metric')}").gauss(0, sd / 2 ** 0.5)


def resume_from(run_dir):
    """The epoch of $HPSYS_RESUME's ckpt.json (0 without one); metrics.jsonl cut back to it."""
    path = os.environ.get("HPSYS_RESUME")
    if not path:
        return 0
    with open(path, encoding="utf-8") as fh:
        epoch = json.load(fh)["epoch"]
    metrics = os.path.join(run_dir, "metrics.jsonl")
    lines = []
    if os.path.exists(metrics):
        with open(metrics, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    with open(metrics, "w", encoding="utf-8") as fh:
        fh.writelines(line + "\n" for line in lines if json.loads(line)["epoch"] <= epoch)
    return epoch


def save_point(run_dir, epoch):
    """ckpt.json and resume.json after `epoch`, each replaced atomically."""
    ckpt = os.path.abspath(os.path.join(run_dir, "ckpt.json"))
    point = os.path.join(run_dir, "resume.json")
    for path, data in ((ckpt, {"epoch": epoch}), (point, {"checkpoint": ckpt, "epoch": epoch})):
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(path + ".tmp", path)


def write_result(run_dir, config, values, epochs, started, status=None, resumed=None):
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
    if resumed is not None:
        result["resumed_from_epoch"] = resumed
    tmp = os.path.join(run_dir, "result.json.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os.replace(tmp, os.path.join(run_dir, "result.json"))


if __name__ == "__main__":
    sys.exit(main())
