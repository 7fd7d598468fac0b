"""Class probabilities of decoded images from a trained model (evaluate.py, predict.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.data import Batches, TensorLoader


def checkpoint_parser(description: str) -> argparse.ArgumentParser:
    """The arguments evaluate.py and predict.py share."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--checkpoint", required=True, type=Path, help="best_model.pt or last.pt")
    parser.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="test-time augmentation (predict.py: the config's tta_views, default its "
        "test_TTA; evaluate.py: horizontal flips, default off)",
    )
    return parser


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
    norm = ckpt["norm_mean"], ckpt["norm_std"]
    loader = TensorLoader(Batches(images, labels, batch_size, device, *norm))
    out = []
    for x, _ in loader:
        probs = model(x).float().softmax(1)
        if flip_tta:
            probs = (probs + model(x.flip(-1)).float().softmax(1)) / 2
        out.append(probs.cpu())
    return torch.cat(out)
