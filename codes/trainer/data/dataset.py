"""Read the competition layout (ID,target CSVs, one image file per ID) and decode every image
once, resized, into one uint8 tensor; split it into hold-out or k-fold indices."""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from trainer.device import loader_workers
from trainer.errors import ConfigError, DataError

IMAGE_SUFFIXES = ("", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class ImageSet:
    """Decoded images (N, 3, H, W uint8), their integer labels, ids and the class names."""

    ids: list[str]
    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def resolve_data_dir(raw: str) -> Path:
    """The data folder, relative to the current directory, else to the repository root."""
    path = Path(raw)
    if path.is_absolute() or path.is_dir():
        return path
    repo_root = Path(__file__).resolve().parents[3]
    candidate = repo_root / path
    return candidate if candidate.is_dir() else path


def read_id_csv(path: Path, need_target: bool = True) -> tuple[list[str], list[int]]:
    """Rows of an `ID,target` CSV; each bad row is named by file and line."""
    if not path.is_file():
        raise DataError(f"CSV not found: {path} (expected columns ID,target)")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        wanted = ["ID", "target"] if need_target else ["ID"]
        missing = [c for c in wanted if c not in fields]
        if missing:
            raise DataError(
                f"{path}: expected columns ID,target, found {','.join(fields) or 'none'}"
            )
        ids, targets = [], []
        for line, row in enumerate(reader, start=2):
            ids.append(row["ID"])
            if not need_target:
                continue
            try:
                targets.append(int(row["target"]))
            except (TypeError, ValueError):
                raise DataError(
                    f"{path}:{line}: target expected an integer class index, got {row['target']!r}"
                ) from None
    if not ids:
        raise DataError(f"{path}: no rows (expected at least one ID,target row)")
    return ids, targets


def read_class_names(data_dir: Path, labels: list[int], num_classes: int | None) -> list[str]:
    """Class names from meta.csv when present; the class count from config, meta or labels."""
    meta = data_dir / "meta.csv"
    names: list[str] = []
    if meta.is_file():
        with meta.open(newline="", encoding="utf-8") as fh:
            try:
                rows = sorted(
                    (int(r["target"]), r.get("class_name") or str(r["target"]))
                    for r in csv.DictReader(fh)
                )
            except (KeyError, TypeError, ValueError):
                raise DataError(
                    f"{meta}: expected columns target,class_name with integer targets"
                ) from None
        names = [name for _, name in rows]
    count = num_classes or len(names) or (max(labels) + 1)
    if len(names) != count:
        names = [str(i) for i in range(count)]
    return names


def check_labels(labels: list[int], num_classes: int, source: Path) -> None:
    """Labels must be class indices in 0..num_classes-1."""
    bad = [(i, t) for i, t in enumerate(labels) if not 0 <= t < num_classes]
    if bad:
        row, target = bad[0]
        raise DataError(
            f"{source}:{row + 2}: label {target} out of range, expected 0..{num_classes - 1} "
            f"(num_classes={num_classes}; {len(bad)} bad rows)"
        )


def find_image(folder: Path, image_id: str) -> Path:
    """`folder/ID`, trying common suffixes when the ID has none."""
    for suffix in IMAGE_SUFFIXES:
        path = folder / f"{image_id}{suffix}"
        if path.is_file():
            return path
    raise DataError(f"image not found: {folder / image_id} (expected one file per CSV ID)")


def _decode_one(path: Path, size: int) -> np.ndarray:
    """RGB at size x size: a square image resized; any other, its longest side to `size` and
    white padding to a square (the original's LongestMaxSize + PadIfNeeded), never stretched."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        if img.width != img.height:
            return _letterbox(size)(image=np.asarray(img))["image"]
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(img)


@functools.cache
def _letterbox(size: int) -> Any:
    import albumentations as A

    from trainer.data.augment import resize_transforms, single_threaded_cv2

    single_threaded_cv2()
    return A.Compose(resize_transforms(size))


def decode_images(folder: Path, ids: list[str], size: int, workers: int = 0) -> torch.Tensor:
    """Decode, convert to RGB and resize every image once into an (N, 3, size, size) uint8;
    `workers` threads decode in parallel (PIL releases the GIL while decoding)."""
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder} (expected {folder.name}/<ID> files)")
    paths = [find_image(folder, image_id) for image_id in ids]
    out = np.empty((len(ids), size, size, 3), dtype=np.uint8)
    if workers > 0 and len(paths) > 64:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for i, array in enumerate(pool.map(_decode_one, paths, [size] * len(paths))):
                out[i] = array
    else:
        for i, path in enumerate(paths):
            out[i] = _decode_one(path, size)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def load_train_set(cfg: dict[str, Any]) -> ImageSet:
    """The training CSV and its images, as configured by data_dir and train_data."""
    data_dir = resolve_data_dir(cfg.get("data_dir", "data"))
    if not data_dir.is_dir():
        raise DataError(
            f"data folder not found: {data_dir} (expected train.csv and train/; "
            "run `python codes/prepare_data.py --out data` for the embedded digits)"
        )
    csv_path = data_dir / cfg.get("train_data", "train.csv")
    ids, labels = read_id_csv(csv_path)
    class_names = read_class_names(data_dir, labels, cfg.get("num_classes"))
    check_labels(labels, len(class_names), csv_path)
    limit = cfg.get("limit_samples")
    if limit and limit < len(ids):
        keep = subsample(labels, limit, cfg.get("random_seed", 42))
        ids, labels = [ids[i] for i in keep], [labels[i] for i in keep]
    images = decode_images(
        data_dir / Path(csv_path.name).stem,
        ids,
        cfg["image_size"],
        loader_workers(cfg.get("num_workers")),
    )
    return ImageSet(ids, images, torch.tensor(labels, dtype=torch.long), class_names)


def subsample(labels: list[int], limit: int, seed: int) -> np.ndarray:
    """A stratified subset of `limit` rows (for smoke tests), in the original order."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    counts = np.bincount(labels)
    strat = labels if counts[counts > 0].min() >= 2 and limit >= len(counts) else None
    keep, _ = train_test_split(index, train_size=limit, stratify=strat, random_state=seed)
    return np.sort(keep)


def split_indices(labels: torch.Tensor, cfg: dict[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """One hold-out split, or `n_folds` >= 2 (stratified) k-fold splits."""
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    y = labels.numpy()
    seed = cfg.get("random_seed", 42)
    stratify = cfg.get("stratify", True)
    n_folds = cfg.get("n_folds") or 0
    index = np.arange(len(y))
    if n_folds >= 2:
        if n_folds > len(y):
            raise ConfigError(f"n_folds: expected at most {len(y)} (the images), got {n_folds}")
        kind = StratifiedKFold if stratify else KFold
        folds = kind(n_splits=n_folds, shuffle=True, random_state=seed)
        return list(folds.split(index, y))
    ratio = cfg.get("val_split_ratio", 0.2)
    n_val = math.ceil(len(y) * ratio)
    can_stratify = stratify and n_val >= len(np.unique(y)) and np.bincount(y).min() >= 2
    train, val = train_test_split(
        index, test_size=ratio, random_state=seed, stratify=y if can_stratify else None
    )
    return [(np.sort(train), np.sort(val))]
