"""Metrics of a trained checkpoint on the validation split or the held-out test data.

    python codes/evaluate.py --checkpoint RUN/checkpoints/best_model.pt [--config PATH]
        [--split val|test] [--tta] [--out metrics.json] [overrides...]

The validation split is rebuilt from the config's seed, ratio and folds, so it is the very split
the run validated on. The test split reads <data_dir>/test_labels.csv and <data_dir>/test/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trainer.errors import exit_code_of
from trainer.infer.predict import checkpoint_parser


def main(argv: list[str] | None = None) -> int:
    parser = checkpoint_parser("Evaluate a checkpoint.")
    parser.add_argument("--config", help="config (default: the one stored in the checkpoint)")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--out", type=Path, help="also write the metrics as JSON here")
    parser.add_argument("overrides", nargs="*", help="overrides, e.g. data_dir=other")
    args = parser.parse_args(argv)
    return exit_code_of(lambda: report(evaluate(args), args.out))


def report(metrics: dict, out: Path | None) -> int:
    text = json.dumps(metrics, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")
    return 0


def evaluate(args: argparse.Namespace) -> dict:
    import torch
    from sklearn.metrics import accuracy_score, f1_score
    from trainer.config import apply_overrides, load_config, validate
    from trainer.data import (
        decode_images,
        load_train_set,
        read_id_csv,
        resolve_data_dir,
        split_indices,
    )
    from trainer.device import pick_device
    from trainer.infer.checkpoint import load_checkpoint
    from trainer.infer.predict import predict_proba

    device = pick_device("auto")
    model, ckpt = load_checkpoint(args.checkpoint, device)
    if args.config:
        cfg = load_config(Path(args.config), args.overrides)
    else:
        cfg = validate(apply_overrides(ckpt["config"], args.overrides), "checkpoint config")
    cfg["image_size"] = ckpt["image_size"]
    if args.split == "test":
        data_dir = resolve_data_dir(cfg.get("data_dir", "data"))
        ids, labels = read_id_csv(data_dir / "test_labels.csv")
        images = decode_images(data_dir / "test", ids, cfg["image_size"])
        y_true = torch.tensor(labels)
    else:
        data = load_train_set(cfg)
        splits = split_indices(data.labels, cfg)
        _, val_idx = splits[ckpt.get("fold") or 0]
        images, y_true = data.images[val_idx], data.labels[val_idx]
    probs = predict_proba(model, images, ckpt, device, flip_tta=args.tta)
    y_pred = probs.argmax(1).numpy()
    y = y_true.numpy()
    return {
        "split": args.split,
        "checkpoint": str(args.checkpoint),
        "images": len(y),
        "acc": float(accuracy_score(y, y_pred)),
        "f1": float(
            f1_score(
                y, y_pred, average="macro", zero_division=0, labels=list(range(ckpt["num_classes"]))
            )
        ),
        "tta": bool(args.tta),
    }


if __name__ == "__main__":
    sys.exit(main())
