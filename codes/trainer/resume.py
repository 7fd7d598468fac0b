"""Resumable training: everything a fit needs to go on after an epoch as if it had never
stopped, captured into last.pt's `resume` section and put back into a freshly built fit.

Captured: model weights (the payload's `model_state`), optimizer, LR schedule, AMP grad
scaler, the random generators (Python, NumPy, torch CPU, CUDA when present, and the loader's
shuffle and augmentation generators), the monitor (best value, best epoch, epochs without
improvement: early stopping goes on where it was), the best weights and evaluations, and the
epoch history. On CPU with the same seed a resumed run ends with the same metrics, to the last
digit, as one never interrupted (tests/codes/test_resume.py).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.engine import Evaluation, FitState, Monitor
from trainer.infer.checkpoint import read_resumable

FORMAT = 1
RESUME_ENV = "HPSYS_RESUME"
# keys that may differ between the interrupted run and its resumption (where outputs go, W&B)
_FREE_KEYS = {"wandb", "output_dir", "run_name"}


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _evaluation(ev: Evaluation | None) -> dict[str, Any] | None:
    return None if ev is None else dataclasses.asdict(ev)


def training_state(state: FitState, wandb_run_id: str | None) -> dict[str, Any]:
    """The `resume` section of last.pt after `state.epoch` (the weights are the payload's)."""
    parts, result = state.parts, state.result
    loader = parts.train_loader
    augment = getattr(loader, "augment", None)
    return {
        "format": FORMAT,
        "epoch": state.epoch,
        "fold": state.fold,
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": (
            parts.schedule.stepper.state_dict() if parts.schedule.stepper is not None else None
        ),
        "scaler": parts.amp.scaler.state_dict() if parts.amp.scaler is not None else None,
        "rng": {
            **rng_states(),
            "loader": loader.generator.get_state(),
            "augment": augment.generator.get_state() if augment is not None else None,
        },
        "monitor": dataclasses.asdict(state.monitor),
        "history": [dict(r) for r in result.history],
        "best": _evaluation(result.best),
        "last": _evaluation(result.last),
        "best_epoch": result.best_epoch,
        "best_state": result.best_state,
        "fed_shape": result.fed_shape,
        "wandb_run_id": wandb_run_id,
    }


def restore(state: FitState, ckpt: dict[str, Any]) -> None:
    """Put a last.pt back into a freshly built fit; the loop then goes on after its epoch."""
    saved, parts, result = ckpt["resume"], state.parts, state.result
    parts.model.load_state_dict(ckpt["model_state"])
    parts.optimizer.load_state_dict(saved["optimizer"])
    if saved["scheduler"] is not None and parts.schedule.stepper is not None:
        parts.schedule.stepper.load_state_dict(saved["scheduler"])
    if saved["scaler"] is not None and parts.amp.scaler is not None:
        parts.amp.scaler.load_state_dict(saved["scaler"])
    rng = saved["rng"]
    set_rng_states(rng)
    parts.train_loader.generator.set_state(rng["loader"])
    augment = getattr(parts.train_loader, "augment", None)
    if augment is not None and rng.get("augment") is not None:
        augment.generator.set_state(rng["augment"])
    state.monitor = Monitor(**saved["monitor"])
    result.history = [dict(r) for r in saved["history"]]
    result.best = Evaluation(**saved["best"]) if saved["best"] else None
    result.last = Evaluation(**saved["last"]) if saved["last"] else None
    result.best_epoch = saved["best_epoch"]
    result.best_state = saved["best_state"]
    result.fed_shape = saved["fed_shape"]
    state.epoch = int(saved["epoch"])


def resume_checkpoint(cfg: dict[str, Any], n_splits: int) -> tuple[dict[str, Any], Path] | None:
    """The last.pt named by $HPSYS_RESUME, when this run can go on from it; None (and one
    warning line) when it cannot: the run then starts over, as the contract allows. A missing
    or unreadable checkpoint is such a case too: a fresh start beats a failed experiment."""
    value = os.environ.get(RESUME_ENV)
    if not value:
        return None
    path = Path(value).resolve()

    def fresh(why: str) -> None:
        print(f"warning: {RESUME_ENV}={value}: {why}; training starts over", file=sys.stderr)

    if n_splits > 1:
        fresh("k-fold runs do not resume")
        return None
    try:
        ckpt = read_resumable(path)
    except Exception as exc:  # noqa: BLE001 - ConfigError or a torch failure alike
        fresh(str(exc))
        return None
    if ckpt["resume"].get("format") != FORMAT or ckpt["resume"].get("fold") is not None:
        fresh("a checkpoint of another format or of a k-fold run")
        return None
    before = {k: v for k, v in (ckpt.get("config") or {}).items() if k not in _FREE_KEYS}
    # a deep copy reads no key (a tracked config counts reads for result.json's unused_keys)
    now = {k: v for k, v in copy.deepcopy(cfg).items() if k not in _FREE_KEYS}
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    if changed:
        fresh(f"the config differs from the checkpoint's ({', '.join(changed[:5])})")
        return None
    return ckpt, path
