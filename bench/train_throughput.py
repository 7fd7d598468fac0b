"""Training-loop throughput against the ceiling of bare forward+backward+step.

    python bench/train_throughput.py [--config codes/config_v2.yaml] [--epochs 3]
        [--num-workers 2] [key=value ...]

The loop is the engine's real epoch (in-memory batches, augmentation, normalisation, AMP plan,
scheduler hooks, loss bookkeeping) on the embedded data. The ceiling is the same model and
optimizer on the same batches made once beforehand, with nothing else in the way. Both are
timed alternately, best of N, so that a busy machine hurts both alike. Target ratio: >= 0.9
with augmentation off; with the albumentations policies on (per-image CPU work) the ratio is
reported twice: augmented in the training process (0 workers), and in --num-workers loader
worker processes, the path a run with num_workers >= 1 takes.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "codes"))

import torch  # noqa: E402
from prepare_data import prepare  # noqa: E402
from trainer import builders  # noqa: E402
from trainer.config import load_config  # noqa: E402
from trainer.data import TensorLoader, load_train_set, make_loaders, split_indices  # noqa: E402
from trainer.device import amp_plan, configure_threads, pick_device  # noqa: E402
from trainer.engine import train_one_epoch, train_step  # noqa: E402
from trainer.parts.assemble import Parts  # noqa: E402


def bare_epoch(model, criterion, optimizer, amp, batches) -> float:
    """Seconds for forward+backward+step over ready-made in-memory batches."""
    model.train()
    start = time.perf_counter()
    for x, y in batches:
        loss = train_step(model, x, y, criterion, optimizer, amp)
    float(loss)  # wait for the device
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "codes" / "config_v2.yaml"))
    parser.add_argument("--epochs", type=int, default=5, help="timed rounds of each (best of)")
    parser.add_argument(
        "--online",
        nargs="*",
        default=None,
        help="policies of the augmentation-on measurement (default: eda basic)",
    )
    parser.add_argument(
        "--num-workers",
        type=int,
        default=2,
        help="loader workers of the second augmentation-on measurement (default: 2)",
    )
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)

    cfg = load_config(Path(args.config), args.overrides)
    data_dir = ROOT / "data" if cfg.get("data_dir", "data") == "data" else Path(cfg["data_dir"])
    prepare(data_dir)
    cfg["data_dir"] = str(data_dir)
    online = args.online or ["eda", "basic"]
    policies = {**cfg, "online_augmentation": True, "augmentation": dict.fromkeys(online, True)}
    variants = [("augmentation off (light, on-device)", {**cfg, "online_augmentation": False})]
    for workers in dict.fromkeys((0, args.num_workers)):  # 0, then the workers' path
        where = "in this process" if workers == 0 else f"{workers} loader workers"
        variants.append((f"augmentation on (albumentations {'+'.join(online)}, {where})",
                         {**policies, "num_workers": workers}))
    for label, variant in variants:
        print(f"--- {label}")
        measure(variant, args.epochs)
    return 0


def measure(cfg: dict, epochs: int) -> float:
    """Print the loop's and the bare ceiling's images/s for `cfg`; returns their ratio."""
    device = pick_device(cfg.get("device", "auto"))
    threads = configure_threads(cfg.get("cpu_threads"))
    amp = amp_plan(bool(cfg.get("mixed_precision")), device)
    torch.manual_seed(0)

    data = load_train_set(cfg)
    train_idx, val_idx = split_indices(data.labels, cfg)[0]
    loader, val_loader = make_loaders(data, train_idx, val_idx, cfg, device)
    model = builders.build_model(cfg, data.num_classes).to(device)
    bare_model = copy.deepcopy(model)
    optimizer = builders.build_optimizer(cfg, model)
    bare_optimizer = builders.build_optimizer(cfg, bare_model)
    schedule = builders.build_scheduler(cfg, optimizer, len(loader))
    criterion = builders.build_criterion(cfg, None).to(device)
    parts = Parts(model, optimizer, schedule, criterion, loader, val_loader, amp,
                  data.num_classes, {})

    steps = len(loader)
    # The ceiling's input: the same batches, made once and kept (real images: random noise
    # repeated drives weights into denormal floats, which is slow on CPUs and not a ceiling).
    # (the albumentations loader's batches are augmented once, as a ready-made copy)
    loader_augment = getattr(loader, "augment", None)
    if isinstance(loader, TensorLoader):
        loader.augment = None
    batches = [(x.clone(), y.clone()) for x, y in loader]
    if isinstance(loader, TensorLoader):
        loader.augment = loader_augment
    images = sum(len(y) for _, y in batches)
    shape = tuple(batches[0][0].shape)

    # Warm-up: first calls allocate and pick kernels.
    train_one_epoch(parts)
    bare_epoch(bare_model, criterion, bare_optimizer, amp, batches)
    loop_s, bare_s, feed_s = [], [], []
    for _ in range(epochs):
        start = time.perf_counter()
        for _batch in loader:  # batching, augmentation and normalisation alone
            pass
        feed_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        train_one_epoch(parts)
        loop_s.append(time.perf_counter() - start)
        bare_s.append(bare_epoch(bare_model, criterion, bare_optimizer, amp, batches))

    loop_ips = images / min(loop_s)
    bare_ips = images / min(bare_s)
    model_name = cfg["model_name"] if isinstance(cfg["model_name"], str) else "custom"
    print(
        f"model {model_name}, input {list(shape)}, {steps} steps/epoch, device {device} "
        f"({threads} threads), AMP {amp.dtype_name}, augment "
        f"{loader.augmentation or 'off'}"
    )
    print(f"training loop : {loop_ips:9.1f} images/s (best of {epochs} epochs)")
    print(
        f"bare fwd+bwd  : {bare_ips:9.1f} images/s (same model, batches and optimizer, "
        "tensors ready in memory)"
    )
    print(f"ratio         : {loop_ips / bare_ips:9.3f} (target >= 0.9)")
    ratio = loop_ips / bare_ips
    print(
        f"data feed     : {1000 * min(feed_s):9.1f} ms/epoch alone = "
        f"{100 * min(feed_s) / min(bare_s):.1f}% of a bare epoch (the loop's own overhead)"
    )
    return ratio


if __name__ == "__main__":
    raise SystemExit(main())
