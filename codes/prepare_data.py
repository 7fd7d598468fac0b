"""Write scikit-learn's bundled digits images in the competition layout (no download).

    python codes/prepare_data.py [--out data]

Layout: train.csv (ID,target), train/<ID>, meta.csv (target,class_name), sample_submission.csv,
test/<ID>, and test_labels.csv (the held-out truth, kept apart for codes/evaluate.py).
Deterministic and idempotent: a finished folder is recognised by its stamp and left alone.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEST_FRACTION = 0.2
SEED = 42
STAMP = ".prepared.json"
VERSION = 1
N_IMAGES = 1797  # the size of sklearn's digits set


def _write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    tmp.replace(path)


def _is_complete(out: Path, expected: dict) -> bool:
    stamp = out / STAMP
    if not stamp.is_file():
        return False
    try:
        recorded = json.loads(stamp.read_text())
    except ValueError:
        return False
    return recorded == expected and all(
        (out / name).is_file()
        for name in ("train.csv", "meta.csv", "sample_submission.csv", "test_labels.csv")
    )


def prepare(out: Path) -> bool:
    """Write the dataset into `out`; returns False when it was already there."""
    expected = {"version": VERSION, "images": N_IMAGES, "seed": SEED, "test": TEST_FRACTION}
    if _is_complete(out, expected):
        return False
    # Imported here so that the already-prepared check stays instant.
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)  # 8x8, 0..16 -> 0..255
    labels = digits.target.astype(int)
    ids = [f"digit_{i:04d}.png" for i in range(len(labels))]
    train_idx, test_idx = train_test_split(
        np.arange(len(ids)), test_size=TEST_FRACTION, stratify=labels, random_state=SEED
    )
    for split, index in (("train", train_idx), ("test", test_idx)):
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in index:
            Image.fromarray(images[i], mode="L").save(folder / ids[i])
    _write_csv(out / "train.csv", ["ID", "target"], [(ids[i], labels[i]) for i in train_idx])
    _write_csv(out / "meta.csv", ["target", "class_name"], list(enumerate(CLASS_NAMES)))
    _write_csv(out / "sample_submission.csv", ["ID", "target"], [(ids[i], 0) for i in test_idx])
    _write_csv(out / "test_labels.csv", ["ID", "target"], [(ids[i], labels[i]) for i in test_idx])
    (out / STAMP).write_text(json.dumps(expected))
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data", help="output folder (default: data)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    wrote = prepare(out)
    print(f"{'wrote' if wrote else 'already prepared'}: digits dataset in {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
