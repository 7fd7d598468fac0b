"""The checkpoint format, written and read in one place: what evaluate.py and predict.py need
to rebuild the model without the run folder (config, classes, input size, normalisation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.artifacts import write_atomic_with
from trainer.data import ImageSet
from trainer.errors import ConfigError
from trainer.parts.model import build_model


def checkpoint_payload(
    state: dict[str, torch.Tensor],
    cfg: dict[str, Any],
    data: ImageSet,
    epoch: int,
    metrics: dict[str, Any],
    fold: int | None,
) -> dict[str, Any]:
    """One checkpoint: the weights with everything needed to use them."""
    return {
        "model_state": state,
        "config": cfg,
        "model_name": cfg["model_name"],
        "num_classes": data.num_classes,
        "class_names": data.class_names,
        "image_size": cfg["image_size"],
        "norm_mean": cfg.get("norm_mean"),
        "norm_std": cfg.get("norm_std"),
        "epoch": epoch,
        "fold": fold,
        "metrics": metrics,
    }


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """torch.save via a temp file in the same folder and os.replace: a kill mid-save leaves the
    previous checkpoint whole, never half of the new one."""
    write_atomic_with(path, lambda fh: torch.save(payload, fh))


def read_resumable(path: Path) -> dict[str, Any]:
    """A last.pt that holds a `resume` section (trainer/resume.py), as saved; ConfigError
    otherwise (missing, unreadable, or a weights-only checkpoint)."""
    ckpt = _read(path)
    if not isinstance(ckpt.get("resume"), dict):
        raise ConfigError(f"HPSYS_RESUME: {path}: no resume state (not a last.pt of this trainer)")
    return ckpt


def _read(path: Path) -> dict[str, Any]:
    """A checkpoint written by codes/train.py, on the CPU; ConfigError naming what is wrong."""
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path} (expected a best_model.pt or last.pt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ConfigError(f"{path}: not a training checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or "model_state" not in ckpt:
        raise ConfigError(f"{path}: not a checkpoint written by codes/train.py")
    return ckpt


def load_checkpoint(path: Path, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The model with its trained weights (no download: the weights are in the file)."""
    ckpt = _read(path)
    cfg = dict(ckpt["config"], pretrained=False)
    model = build_model(cfg, ckpt["num_classes"])
    model.load_state_dict(ckpt["model_state"])
    return model.to(device).eval(), ckpt
