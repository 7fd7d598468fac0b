"""Test-time augmentation: class probabilities averaged over views of each batch (the whole
batch per view: one forward pass per view), for validation (`val_TTA`) and prediction
(`test_TTA`; `TTA` is the original's fallback for both). `tta_views` chooses the views;
`tta_dropout: true` keeps dropout active (MC dropout) while BatchNorm stays in eval mode."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainer.errors import ConfigError
from trainer.evaluation import Evaluation, scored


def _rotate(degrees: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def view(x: torch.Tensor) -> torch.Tensor:
        a = math.radians(degrees)
        theta = torch.tensor(
            [[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]],
            dtype=x.dtype,
            device=x.device,
        ).expand(len(x), 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    return view


VIEWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda x: x,
    "hflip": lambda x: x.flip(-1),
    "vflip": lambda x: x.flip(-2),
    "transpose": lambda x: x.transpose(-1, -2),
    "rot90": lambda x: torch.rot90(x, 1, (-2, -1)),
    "rot180": lambda x: torch.rot90(x, 2, (-2, -1)),
    "rot270": lambda x: torch.rot90(x, 3, (-2, -1)),
    "rot5": _rotate(5.0),
    "rot-5": _rotate(-5.0),
}
# The flips and transpose every original policy trains with.
DEFAULT_VIEWS = ("identity", "hflip", "vflip", "transpose")


@dataclass(frozen=True)
class TTAPlan:
    views: tuple[str, ...]
    dropout: bool = False


def _views(cfg: dict[str, Any]) -> tuple[str, ...]:
    views = cfg.get("tta_views") or list(DEFAULT_VIEWS)
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise ConfigError(
            f"tta_views: unknown view {unknown[0]!r} (expected some of {', '.join(VIEWS)})"
        )
    return tuple(views)


def tta_plans(cfg: dict[str, Any]) -> tuple[TTAPlan | None, TTAPlan | None]:
    """(validation plan, test plan); None where that TTA is off."""
    fallback = bool(cfg.get("TTA", False))
    val = cfg.get("val_TTA", fallback)
    test = cfg.get("test_TTA", fallback)
    if not (val or test):
        return None, None
    plan = TTAPlan(_views(cfg), bool(cfg.get("tta_dropout", False)))
    return (plan if val else None), (plan if test else None)


def _dropout_on(model: nn.Module) -> None:
    """Eval mode, except dropout (and drop-path) modules: MC dropout."""
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd) or "DropPath" in type(module).__name__:
            module.train()


def tta_proba(model: nn.Module, x: torch.Tensor, plan: TTAPlan, amp: Any = None) -> torch.Tensor:
    """Softmax averaged over the plan's views, one forward pass of the whole batch per view."""
    enabled = bool(amp is not None and amp.enabled)
    dtype = amp.dtype if amp is not None else None
    total = None
    for name in plan.views:
        with torch.autocast(x.device.type, dtype=dtype, enabled=enabled):
            probs = model(VIEWS[name](x)).float().softmax(1)
        total = probs if total is None else total + probs
    assert total is not None
    return total / len(plan.views)


@torch.inference_mode()
def evaluate_tta(
    model: nn.Module, loader: Iterable[Any], amp: Any, num_classes: int, plan: TTAPlan
) -> Evaluation:
    """engine.evaluate with TTA: loss is the NLL of the averaged probabilities."""
    was_training = model.training
    _dropout_on(model) if plan.dropout else model.eval()
    probs, targets = [], []
    for x, y in loader:
        probs.append(tta_proba(model, x, plan, amp))
        targets.append(y)
    model.train(was_training)
    p, y_all = torch.cat(probs), torch.cat(targets)
    loss = float(F.nll_loss(p.clamp_min(1e-12).log(), y_all))
    return scored(loss, y_all.cpu().numpy(), p.argmax(1).cpu().numpy(), num_classes)


@torch.inference_mode()
def predict_tta(model: nn.Module, loader: Iterable[Any], plan: TTAPlan) -> torch.Tensor:
    """Class probabilities of every batch of `loader`, averaged over the plan's views."""
    _dropout_on(model) if plan.dropout else model.eval()
    return torch.cat([tta_proba(model, x, plan).cpu() for x, _ in loader])
