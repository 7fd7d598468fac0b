"""`make gpu-check` (tools/gpu_check.py): without a GPU it skips, green; its plumbing (the
2-slot quickstart forked from the preload server, `effective`, the OOM retry) runs on the CPU
with HPSYS_GPU_CHECK_CPU=1; what it demands of `effective` on a GPU."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "gpu_check.py"


def _run(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env={**os.environ, **env})


def test_without_a_gpu_it_skips_and_passes() -> None:
    proc = _run(CUDA_VISIBLE_DEVICES="-1")
    assert proc.returncode == 0 and proc.stdout.strip() == "no GPU: skipped", proc.stderr


def test_what_it_asks_of_effective_on_a_gpu() -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.CPU = False

    def row(**eff):
        return SimpleNamespace(run_name="r", result={"effective": eff})

    assert tool._effective_problem(row(device="cuda:0", mixed_precision=True,
                                       amp_dtype="bfloat16", grad_scaler=False)) is None
    assert tool._effective_problem(row(device="cuda", mixed_precision=True,
                                       amp_dtype="float16", grad_scaler=True)) is None
    assert "expected cuda" in tool._effective_problem(row(device="cpu"))
    assert "expected on" in tool._effective_problem(row(device="cuda", mixed_precision=False,
                                                        amp_dtype="float32"))
    assert "GradScaler" in tool._effective_problem(row(device="cuda", mixed_precision=True,
                                                       amp_dtype="float16", grad_scaler=False))


@pytest.mark.slow
def test_its_plumbing_on_the_cpu() -> None:
    proc = _run(HPSYS_GPU_CHECK_CPU="1", CUDA_VISIBLE_DEVICES="-1")
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [line.split(":")[0].split()[-1] for line in lines[:-1]] == [
        "gpu", "preload", "slots", "quickstart", "parallel", "effective", "oom"]
    assert all(line.startswith("ok") for line in lines[:-1]) and "all checks passed" in lines[-1]
