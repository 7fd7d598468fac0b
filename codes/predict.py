"""Write a submission CSV from a trained checkpoint, in sample_submission.csv's order.

python codes/predict.py --checkpoint RUN/checkpoints/best_model.pt [--data-dir data]
    [--out submission.csv] [--tta | --no-tta]   (TTA default: the config's test_TTA)

A k-fold run (n_folds >= 2) averages every fold's softmax (fold<k>_best.pt) when given its
best_model.pt, its checkpoints/ folder or the run folder; a fold<k>_best.pt alone predicts alone.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from trainer.errors import exit_code_of
from trainer.infer.predict import checkpoint_parser


def main(argv: list[str] | None = None) -> int:
    parser = checkpoint_parser("Predict the test images of a data folder.")
    parser.add_argument("--data-dir", help="data folder (default: the checkpoint config's)")
    parser.add_argument("--out", type=Path, default=Path("submission.csv"))
    args = parser.parse_args(argv)
    return exit_code_of(lambda: write_submission(predict(args), args.out))


def write_submission(rows: list[tuple[str, int]], out: Path) -> int:
    """The competition's ID,target CSV."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ID", "target"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} predictions to {out}")
    return 0


def predict(args: argparse.Namespace) -> list[tuple[str, int]]:
    from trainer.data import decode_images, read_id_csv, resolve_data_dir
    from trainer.device import pick_device
    from trainer.infer.checkpoint import load_checkpoint

    device = pick_device("auto")
    paths = fold_checkpoints(args.checkpoint)
    model, ckpt = load_checkpoint(paths[0], device)
    data_dir = resolve_data_dir(args.data_dir or ckpt["config"].get("data_dir", "data"))
    ids, _ = read_id_csv(data_dir / "sample_submission.csv", need_target=False)
    images = decode_images(data_dir / "test", ids, ckpt["image_size"])
    plan = test_plan(ckpt["config"], args.tta)
    print(f"TTA: {', '.join(plan.views) if plan else 'off'}")
    probs = proba(model, images, ckpt, device, plan)
    for path in paths[1:]:  # k-fold: the mean of every fold's softmax
        model, ckpt = load_checkpoint(path, device)
        probs = probs + proba(model, images, ckpt, device, plan)
    if len(paths) > 1:
        print(f"averaged the softmax of {len(paths)} fold checkpoints")
    preds = (probs / len(paths)).argmax(1).tolist()
    return list(zip(ids, preds, strict=True))


def test_plan(cfg: dict[str, Any], asked: bool | None) -> Any:
    """The config's test_TTA (TTA as the fallback) unless --tta / --no-tta says otherwise."""
    from trainer.tta import tta_plans

    if asked is None:
        return tta_plans(cfg)[1]
    return tta_plans({**cfg, "test_TTA": True})[1] if asked else None


def proba(model: Any, images: Any, ckpt: dict[str, Any], device: Any, plan: Any) -> Any:
    """Class probabilities, averaged over the plan's views (batched) when TTA is on."""
    import torch
    from trainer.data import Batches, TensorLoader
    from trainer.infer.predict import predict_proba
    from trainer.tta import predict_tta

    if plan is None:
        return predict_proba(model, images, ckpt, device)
    labels = torch.zeros(len(images), dtype=torch.long)
    norm = ckpt["norm_mean"], ckpt["norm_std"]
    loader = TensorLoader(Batches(images, labels, 256, device, *norm))
    return predict_tta(model, loader, plan)


def fold_checkpoints(path: Path) -> list[Path]:
    """The checkpoints to average: a k-fold run's fold<k>_best.pt when given its run folder,
    its checkpoints/ folder or its best_model.pt; else the one checkpoint given."""
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if path.is_dir() or path.name == "best_model.pt":
        folder = folder if path.is_dir() else path.parent
        folds = sorted(folder.glob("fold*_best.pt"), key=lambda p: int(p.stem[4:-5] or 0))
        if folds:
            return folds
        if path.is_dir():
            return [folder / "best_model.pt"]
    return [path]


if __name__ == "__main__":
    sys.exit(main())
