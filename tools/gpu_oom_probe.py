#!/usr/bin/env python3
"""A model script for `make gpu-check` that provokes one real CUDA out-of-memory error.

It honours the runner -> script contract (config from --config, metrics.jsonl and result.json
in $HPSYS_RUN_DIR, exit 0 only with result.json) and allocates GPU memory in proportion to its
batch size: at `probe.full_batch` 1.25x the GPU's total memory (torch's own OutOfMemoryError,
which the runner reads in train.log), at half of it 0.625x, which fits. The runner's
execution.retry_oom_halving is what gets it from the one to the other.

With HPSYS_GPU_CHECK_CPU=1 (the check's plumbing, on a machine without a GPU) the first attempt
only prints the error line CUDA would print.
"""

from __future__ import annotations

import json
import os
import sys
import time

import yaml


def main() -> int:
    argv = sys.argv[1:]
    path = argv[argv.index("--config") + 1] if "--config" in argv else os.environ[
        "EXPERIMENT_CONFIG"]
    with open(path, encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    batch, full = int(config["batch_size"]), int(config["probe"]["full_batch"])
    run_dir = os.environ["HPSYS_RUN_DIR"]
    os.makedirs(run_dir, exist_ok=True)
    started = time.time()
    import torch

    if os.environ.get("HPSYS_GPU_CHECK_CPU") == "1":
        device, allocated = "cpu", 0
        if batch >= full:
            print("torch.OutOfMemoryError: CUDA out of memory (simulated: no GPU)", flush=True)
            return 1
    else:
        _, total = torch.cuda.mem_get_info()
        allocated = int(total * 1.25 * batch / full)
        print(f"batch {batch}: allocating {allocated / 2**30:.1f} GiB of "
              f"{total / 2**30:.1f} GiB", flush=True)
        block = torch.empty(allocated, dtype=torch.uint8, device="cuda")  # OOM at full batch
        block.fill_(1)
        torch.cuda.synchronize()
        device = str(block.device)
        del block
    line = {"epoch": 1, "train_loss": 0.0, "val_loss": 0.0, "val_acc": 1.0, "val_f1": 1.0,
            "lr": 0.0, "seconds": round(time.time() - started, 3)}
    with open(os.path.join(run_dir, "metrics.jsonl"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")
    result = {"status": "done", "metrics": {"best_val_f1": 1.0, "final_val_f1": 1.0},
              "duration_s": time.time() - started, "unused_keys": [],
              "effective": {"device": device, "batch_size": batch, "allocated_bytes": allocated,
                            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}}
    tmp = os.path.join(run_dir, "result.json.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os.replace(tmp, os.path.join(run_dir, "result.json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
