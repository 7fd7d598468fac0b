"""Pick the device and the mixed-precision plan, and say which was actually used."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from trainer.errors import ConfigError


@dataclass
class AmpPlan:
    """Autocast on/off with its dtype; a GradScaler only for float16."""

    enabled: bool
    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None
    note: str

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.") if self.enabled else "float32"


def pick_device(preference: str = "auto") -> torch.device:
    """CUDA when available, else CPU. torch itself honours CUDA_VISIBLE_DEVICES, so `cuda:N`
    counts among the visible devices; it becomes the current device, so that AMP's capability
    check and any default-device allocation concern the GPU that trains."""
    pref = (preference or "auto").lower()
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(pref)
    except RuntimeError:
        raise ConfigError(f"device: expected auto, cpu or cuda[:N], got {preference!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device: expected auto, cpu or cuda[:N], got {preference!r}")
    if device.type == "cuda":
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if visible == 0 or (device.index or 0) >= visible:
            raise ConfigError(
                f"device: {preference!r} asked for, but {visible} CUDA device(s) are visible "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
                f"expected {f'auto, cpu or cuda:0..{visible - 1}' if visible else 'auto or cpu'}"
            )
        if device.index is not None:
            torch.cuda.set_device(device)
    return device


def amp_plan(requested: bool, device: torch.device) -> AmpPlan:
    """bf16 autocast on CUDA when supported, else fp16 with a scaler; CPU stays float32."""
    if not requested:
        return AmpPlan(False, None, None, "mixed precision off")
    if device.type == "cuda":
        # Native bf16 only (Ampere and later): emulated bf16 is slower than fp16 + scaler.
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return AmpPlan(True, torch.bfloat16, None, "CUDA autocast bfloat16")
        scaler = torch.amp.GradScaler("cuda")
        return AmpPlan(True, torch.float16, scaler, "CUDA autocast float16 with GradScaler")
    return AmpPlan(False, None, None, "mixed precision requested, not used on CPU (float32)")


def configure_threads(count: int | None) -> int:
    """CPU threads for torch: the configured count, else the runner's slot share
    (HPSYS_CPU_THREADS), else torch's default (which honours OMP_NUM_THREADS)."""
    if not count:
        env = os.environ.get("HPSYS_CPU_THREADS", "")
        count = int(env) if env.isdigit() else None
    if count and count > 0:
        torch.set_num_threads(count)
    return torch.get_num_threads()


def loader_workers(configured: int | None) -> int:
    """Workers for decoding: the config's count, capped by the runner's share of the CPU for
    this slot (HPSYS_MAX_WORKERS) so parallel experiments do not oversubscribe the cores."""
    count = max(0, configured or 0)
    cap = os.environ.get("HPSYS_MAX_WORKERS", "")
    return min(count, int(cap)) if cap.isdigit() else count
