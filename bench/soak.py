"""Soak: 1,000 trivial experiments on 4 slots through the real executor and ledger.

Prints the throughput, the runner's peak memory (RSS and Python heap) and its open file
descriptors and threads at start and end; exits 1 when an experiment is not done or a count grew.

    .venv/bin/python bench/soak.py [--experiments 1000] [--slots 4]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hyperparameter_system.app import api  # noqa: E402

# A training script that does nothing but honour the contract: result.json, exit 0.
TRIVIAL = ("import json, os; d = os.environ['HPSYS_RUN_DIR']; json.dump({'experiment_id': "
           "os.environ['HPSYS_EXPERIMENT_ID'], 'metrics': {'best_val_f1': 0.5}}, "
           "open(d + '/result.json', 'w'))")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=4)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hpsys-soak-"))
    master = {
        "system": {"project_root": str(ROOT), "base_config": "tests/fakes/base.yaml",
                   "ledger": str(tmp / "l.db"), "runs_dir": str(tmp / "runs"),
                   "temp_config_dir": str(tmp / "tc"), "keep_temp_configs": False,
                   "wandb_mode": "disabled", "baseline": False},
        "models": [{"name": "soak", "script": ["python", "-S", "-c", TRIVIAL]}],
        "experiment_categories": {"soak": {"options": [{"fake.metric": i}
                                                       for i in range(args.experiments)]}},
        "execution": {"max_parallel": args.slots},
    }
    (tmp / "master.yaml").write_text(yaml.safe_dump(master))
    settings = api.load(tmp / "master.yaml")
    experiments = api.select(settings)

    fds_start, threads_start = open_fds(), threading.active_count()
    peak_fds = [fds_start]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak_fds.append(open_fds())

    threading.Thread(target=sample, daemon=True).start()
    tracemalloc.start()
    started = time.perf_counter()
    result = api.run(settings, experiments)
    elapsed = time.perf_counter() - started
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    done.set()
    time.sleep(0.1)
    fds_cyclic = open_fds()  # ledgers caught in reference cycles still hold their connection
    gc.collect()
    fds_end, threads_end = open_fds(), threading.active_count()
    statuses = api.open_ledger(settings).statuses()
    ok = sum(1 for s in statuses.values() if s == "done")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"experiments      {ok}/{len(experiments)} done on {args.slots} slots "
          f"(interrupted: {result.interrupted})")
    print(f"wall time        {elapsed:.1f} s")
    print(f"throughput       {len(experiments) / elapsed:.1f} experiments/s")
    print(f"peak memory      {rss_mb:.0f} MB RSS, {heap_peak / 2**20:.1f} MB Python heap")
    print(f"open fds         {fds_start} at start, {fds_end} at end ({fds_cyclic} before "
          f"gc.collect), {max(peak_fds)} at most")
    print(f"threads          {threads_start} at start, {threads_end} at end")
    shutil.rmtree(tmp, ignore_errors=True)
    grew = fds_end > fds_start or threads_end > threads_start
    return 0 if ok == len(experiments) and not grew else 1


if __name__ == "__main__":
    raise SystemExit(main())
