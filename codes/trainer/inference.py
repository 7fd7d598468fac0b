"""Rebuild a trained model from its checkpoint and predict on decoded images."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer import builders
from trainer.data import TensorLoader
from trainer.errors import ConfigError


def checkpoint_parser(description: str) -> argparse.ArgumentParser:
    """The arguments evaluate.py and predict.py share."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--checkpoint", required=True, type=Path, help="best_model.pt or last.pt")
    parser.add_argument("--tta", action="store_true", help="average with horizontal flips")
    return parser


def load_checkpoint(path: Path, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The model with its trained weights (no download: the weights are in the file)."""
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path} (expected a best_model.pt or last.pt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ConfigError(f"{path}: not a training checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or "model_state" not in ckpt:
        raise ConfigError(f"{path}: not a checkpoint written by codes/train.py")
    cfg = dict(ckpt["config"], pretrained=False)
    model = builders.build_model(cfg, ckpt["num_classes"])
    model.load_state_dict(ckpt["model_state"])
    return model.to(device).eval(), ckpt


@torch.inference_mode()
def predict_proba(
    model: nn.Module,
    images: torch.Tensor,
    ckpt: dict[str, Any],
    device: torch.device,
    batch_size: int = 256,
    flip_tta: bool = False,
) -> torch.Tensor:
    """Class probabilities for uint8 images, normalised as in training; flip TTA averages
    them with those of the mirrored images."""
    labels = torch.zeros(len(images), dtype=torch.long)
    loader = TensorLoader(images, labels, batch_size, device, ckpt["norm_mean"], ckpt["norm_std"])
    out = []
    for x, _ in loader:
        probs = model(x).float().softmax(1)
        if flip_tta:
            probs = (probs + model(x.flip(-1)).float().softmax(1)) / 2
        out.append(probs.cpu())
    return torch.cat(out)
