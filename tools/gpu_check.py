#!/usr/bin/env python3
"""`make gpu-check`: the CUDA paths on a real GPU, one line per check, in a few minutes.

What the rest of the suite only fakes: a 2-slot quickstart on one GPU (experiments_per_gpu: 2,
CUDA_VISIBLE_DEVICES per slot) with mixed precision, every experiment forked from the preload
server and initialising CUDA in the child; `effective` read back from each result.json
(device, AMP on, its dtype, the GradScaler only for float16); then one real CUDA
out-of-memory error (tools/gpu_oom_probe.py) that the runner survives by retrying with half
the batch (execution.retry_oom_halving). Exit 0 when every check passed, 1 otherwise; without
a GPU it prints "no GPU: skipped" and exits 0, so CI stays green.

    python tools/gpu_check.py            # or: make gpu-check
    HPSYS_GPU_CHECK_CPU=1 python tools/gpu_check.py   # the plumbing alone, on the CPU
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hyperparameter_system.app import api  # noqa: E402
from hyperparameter_system.run import devices  # noqa: E402
from hyperparameter_system.store.ledger import Ledger  # noqa: E402
from hyperparameter_system.store.row import Row  # noqa: E402

CPU = os.environ.get("HPSYS_GPU_CHECK_CPU") == "1"  # plumbing only: no CUDA expectations
RUN_TIMEOUT_S = 240
FULL_BATCH = 64


class Checks:
    """Prints `ok`/`FAIL` and one line per check as it is decided; remembers any failure."""

    failed = False

    def say(self, ok: bool, name: str, detail: str) -> bool:
        print(f"{'ok  ' if ok else 'FAIL'}  {name}: {detail}", flush=True)
        self.failed |= not ok
        return ok


def _gpu_names() -> list[str]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def _runner(config: Path, *args: str) -> subprocess.CompletedProcess:
    """The runner CLI as a user runs it, the shell scripts finding this interpreter."""
    env = {**os.environ, "PYTHON": sys.executable, "WANDB_MODE": "disabled",
           "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([sys.executable, "-m", "hyperparameter_system.experiment_runner",
                           "--config", str(config), *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=RUN_TIMEOUT_S + 60,
                          stdin=subprocess.DEVNULL)


def _system(tmp: Path) -> dict[str, Any]:
    return {"project_root": str(ROOT), "ledger": str(tmp / "ledger.db"),
            "runs_dir": str(tmp / "runs"), "temp_config_dir": str(tmp / "temp_configs"),
            "reports_dir": str(tmp / "reports"), "wandb_mode": "disabled"}


def _execution(**more: Any) -> dict[str, Any]:
    return {"gpus": "none" if CPU else "auto", "preload": True,
            "experiment_timeout": RUN_TIMEOUT_S, **more}


def quickstart_master(tmp: Path) -> Path:
    """examples/quickstart.yaml on the GPU: its two models (the Python trainer and the shell
    script's exec plan), baseline and optimizer, mixed precision on, two slots on one GPU."""
    doc = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    doc["system"] = {**doc["system"], **_system(tmp),
                     "overrides": [*doc["system"].get("overrides", []),
                                   "mixed_precision=true"]}
    doc["experiment_categories"] = {"optimizer": doc["experiment_categories"]["optimizer"]}
    doc["execution"] = _execution(max_parallel=2, experiments_per_gpu=2, retry_failed=0)
    path = tmp / "quickstart_gpu.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def oom_master(tmp: Path) -> Path:
    """One experiment of tools/gpu_oom_probe.py whose first attempt runs out of memory."""
    base = tmp / "oom_base.yaml"
    base.write_text(yaml.safe_dump({"batch_size": FULL_BATCH, "epochs": 1,
                                    "probe": {"full_batch": FULL_BATCH, "tag": 0}}))
    doc = {"system": {**_system(tmp / "oom"), "base_config": str(base), "baseline": False},
           "models": [{"name": "oom_probe", "script": "python tools/gpu_oom_probe.py",
                       "schema": None}],
           "experiment_categories": {"probe": {"options": [{"probe.tag": 1}]}},
           "execution": _execution(max_parallel=1, retry_failed=3, retry_oom_halving=True)}
    path = tmp / "oom_gpu.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _overlapped(rows: Sequence[Row]) -> bool:
    """Whether two runs were in flight at once (two slots really shared the GPU)."""
    spans = sorted((r.started_at, r.finished_at) for r in rows
                   if r.started_at is not None and r.finished_at is not None)
    return any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


def _effective_problem(row: Row) -> str | None:
    """What is wrong with one run's `effective` on the GPU with mixed precision asked for."""
    eff = row.result.get("effective") or {}
    device, dtype = str(eff.get("device")), eff.get("amp_dtype")
    if CPU:
        return None if device == "cpu" else f"{row.run_name}: device {device}, expected cpu"
    if not device.startswith("cuda"):
        return f"{row.run_name}: device {device}, expected cuda"
    if eff.get("mixed_precision") is not True or dtype not in ("bfloat16", "float16"):
        return f"{row.run_name}: AMP {eff.get('mixed_precision')} {dtype}, expected on"
    if bool(eff.get("grad_scaler")) != (dtype == "float16"):
        return f"{row.run_name}: GradScaler {eff.get('grad_scaler')} with {dtype}"
    return None


def check_quickstart(checks: Checks, tmp: Path) -> None:
    master = quickstart_master(tmp)
    settings = api.load(master)
    experiments = api.select(settings)
    paths = api.launch_paths(settings, experiments)
    checks.say(all(p.startswith(api.PRELOADED) for p in paths.values()), "preload",
               "; ".join(f"{m}: {p}" for m, p in paths.items()))
    slots = api.local_slots(settings)
    checks.say(len(slots) == 2, "slots", ", ".join(
        f"{s.name} (CUDA_VISIBLE_DEVICES={s.env.get('CUDA_VISIBLE_DEVICES', 'unset')})"
        for s in slots))
    start = time.monotonic()
    proc = _runner(master, "--all")
    took = time.monotonic() - start
    rows = Ledger(settings.system.ledger).rows()
    done = [r for r in rows if r.status == "done"]
    if not checks.say(proc.returncode == 0 and len(done) == len(experiments), "quickstart",
                      f"{len(done)}/{len(experiments)} done in {took:.0f} s on 2 slots "
                      f"(exit {proc.returncode})"):
        print((proc.stdout + proc.stderr)[-3000:], flush=True)
        for r in rows:
            if r.status != "done":
                print(f"      {r.run_name}: {r.status} {r.error or ''}", flush=True)
    checks.say(_overlapped(done), "parallel", "two experiments ran at once on the slots"
               if _overlapped(done) else "no two experiments overlapped")
    problems = [p for p in map(_effective_problem, done) if p]
    dtypes = sorted({str((r.result.get("effective") or {}).get("amp_dtype")) for r in done})
    devices_seen = sorted({str((r.result.get("effective") or {}).get("device")) for r in done})
    checks.say(bool(done) and not problems, "effective", "; ".join(problems) or
               f"device {', '.join(devices_seen)}, AMP dtype {', '.join(dtypes)} "
               f"({len(done)} runs)")


def check_oom(checks: Checks, tmp: Path) -> None:
    master = oom_master(tmp)
    settings = api.load(master)
    proc = _runner(master, "--all")
    rows = Ledger(settings.system.ledger).rows()
    row = rows[0] if rows else None
    eff = (row.result.get("effective") or {}) if row else {}
    ok = (proc.returncode == 0 and row is not None and row.status == "done"
          and "after CUDA OOM" in (row.note or "") and eff.get("batch_size", FULL_BATCH)
          < FULL_BATCH)
    detail = (f"{row.note}; visible {eff.get('cuda_visible_devices')}, device "
              f"{eff.get('device')}" if ok and row is not None else
              f"exit {proc.returncode}, row {row.status if row else None}: "
              f"{(row.error or row.note) if row else (proc.stdout + proc.stderr)[-800:]}")
    checks.say(ok, "oom", detail)


def main() -> int:
    gpus = devices.detect_gpus()
    if not gpus and not CPU:
        print("no GPU: skipped", flush=True)
        return 0
    checks = Checks()
    names = _gpu_names()
    checks.say(CPU or bool(names), "gpu", "; ".join(names) if names else
               "none (HPSYS_GPU_CHECK_CPU=1: the plumbing on the CPU)")
    if not (ROOT / "data" / "train.csv").exists():
        checks.say(False, "data", "data/train.csv missing: run `make data` first")
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="hpsys-gpu-check-"))
    steps: list[Callable[[Checks, Path], None]] = [check_quickstart, check_oom]
    try:
        for step in steps:
            try:
                step(checks, tmp)
            except Exception as exc:  # a check that crashed is a failed check, not the end
                checks.say(False, step.__name__.removeprefix("check_"),
                           f"{type(exc).__name__}: {exc}")
    finally:
        if not checks.failed:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"      kept for a look: {tmp}", flush=True)
    print("gpu-check: " + ("FAILED" if checks.failed else "all checks passed"), flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
