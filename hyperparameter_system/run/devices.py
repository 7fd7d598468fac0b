"""GPU slots: which devices each parallel experiment may see, found without importing torch."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from hyperparameter_system.run import reaper


@dataclass(frozen=True)
class Slot:
    """One place an experiment runs: its name, its GPUs and its share of the CPU."""

    name: str
    devices: tuple[str, ...] = ()  # as CUDA_VISIBLE_DEVICES takes them: indices, GPU-/MIG- UUIDs
    env: dict[str, str] = field(default_factory=dict)


def detect_gpus() -> list[str]:
    """GPUs visible to this process: CUDA_VISIBLE_DEVICES (indices or GPU-/MIG- UUIDs, as a
    scheduler may set them), else nvidia-smi's indices, else none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return visible_devices(visible)
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [x for x in out.split() if x.strip().isdigit()]


def visible_devices(value: str) -> list[str]:
    """The GPUs a CUDA_VISIBLE_DEVICES value shows, read as CUDA reads it: up to the first
    empty or negative entry, so `-1` (the usual way to hide every GPU) or `""` means none."""
    found = []
    for entry in (x.strip() for x in value.split(",")):
        if not entry or entry.startswith("-"):
            break
        found.append(entry)
    return found


def plan_slots(max_parallel: int, gpus: str | Sequence[int | str], gpus_per_experiment: int = 1,
               experiments_per_gpu: int = 1, cpus: int | None = None) -> list[Slot]:
    """Split the GPUs into groups of `gpus_per_experiment`, each shared by at most
    `experiments_per_gpu` slots, and the CPU threads evenly between slots.

    gpus: "auto" (detect), a list of indices, or () for CPU only (then CUDA is hidden).
    """
    found = detect_gpus() if gpus == "auto" else [str(g) for g in gpus]
    cpus = cpus or os.cpu_count() or 1
    if len(set(found)) < len(found):  # two groups holding one GPU would share it
        raise ValueError(f"GPU indices listed twice: {found}")
    if found:
        groups = [tuple(found[i:i + gpus_per_experiment])
                  for i in range(0, len(found) - gpus_per_experiment + 1, gpus_per_experiment)]
        count = min(max_parallel, len(groups) * experiments_per_gpu) if groups else 0
        if count == 0:
            raise ValueError(
                f"{len(found)} GPU(s) cannot give {gpus_per_experiment} per experiment")
        layout = [groups[i % len(groups)] for i in range(count)]
    else:
        count = max_parallel
        layout = [() for _ in range(count)]
    threads = max(1, cpus // count)
    slots = []
    for i, devices in enumerate(layout):
        env = thread_env(threads)
        if found:  # indices as nvidia-smi numbers them (CUDA's default order may differ)
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
            env["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
        elif gpus != "auto":
            env["CUDA_VISIBLE_DEVICES"] = ""  # gpus: none means CPU even on a GPU machine
        name = f"gpu{','.join(devices)}" if devices else f"cpu{i}"
        slots.append(Slot(name, devices, env))
    return slots


def thread_env(threads: int) -> dict[str, str]:
    """One slot's CPU share: BLAS/OpenMP threads, and data workers besides the training loop, so
    parallel experiments do not oversubscribe the cores."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "HPSYS_CPU_THREADS": str(threads), "HPSYS_MAX_WORKERS": str(max(0, threads - 1))}


def wait_released(devices: Sequence[int | str], experiment_id: str,
                  timeout: float = 30.0) -> bool:
    """Before a GPU slot is reused: wait until no process of the finished experiment holds
    memory on its devices (as nvidia-smi reports). True when seen released or unreadable."""
    if not devices or shutil.which("nvidia-smi") is None:
        return True
    deadline = time.time() + timeout
    query = ["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader",
             f"--id={','.join(map(str, devices))}"]
    while time.time() < deadline:
        try:
            out = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return True
        pids = {int(x) for x in out.split() if x.isdigit()}
        if not pids & set(reaper.experiment_pids(experiment_id)):
            return True
        time.sleep(0.5)
    return False
