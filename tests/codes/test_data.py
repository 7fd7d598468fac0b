"""Embedded dataset, splits, in-memory batches and the device/AMP plan."""

from __future__ import annotations

import contextlib
import csv

import pytest
import torch
from trainer.data import Augmenter, TensorLoader, load_train_set, split_indices
from trainer.device import amp_plan
from trainer.errors import DataError


def _rows(path):
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_prepare_data_layout_and_idempotence(digits_dir, codes_dir):
    import sys

    sys.path.insert(0, str(codes_dir))
    from prepare_data import prepare

    train, test = _rows(digits_dir / "train.csv"), _rows(digits_dir / "test_labels.csv")
    assert len(train) + len(test) == 1797 and len(test) == 360
    assert not {r["ID"] for r in train} & {r["ID"] for r in test}
    assert all((digits_dir / "train" / r["ID"]).is_file() for r in train)
    assert [r["ID"] for r in _rows(digits_dir / "sample_submission.csv")] == [r["ID"] for r in test]
    assert [r["class_name"] for r in _rows(digits_dir / "meta.csv")][:2] == ["zero", "one"]
    assert prepare(digits_dir) is False  # already complete: nothing rewritten


def test_stratified_split_and_folds(tiny_cfg):
    data = load_train_set(tiny_cfg)
    assert data.images.dtype == torch.uint8 and data.images.shape[1:] == (3, 32, 32)
    ((train, val),) = split_indices(data.labels, tiny_cfg)
    assert len(val) == 32 and not set(train) & set(val)
    assert torch.bincount(data.labels[val], minlength=10).min() >= 3  # every class present
    folds = split_indices(data.labels, {**tiny_cfg, "n_folds": 4})
    assert len(folds) == 4 and sorted(i for _, v in folds for i in v) == list(range(160))


def test_loader_batches_normalised_and_repeatable():
    images = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(10)
    kwargs = {"mean": [0.5] * 3, "std": [0.25] * 3, "shuffle": True, "seed": 3}
    a = list(TensorLoader(images, labels, 3, torch.device("cpu"), **kwargs))
    b = list(TensorLoader(images, labels, 3, torch.device("cpu"), **kwargs))
    assert len(a) == 3  # 10 = 3 + 3 + 3 + a lone sample, which is dropped
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(a, b, strict=True))
    x, y = a[0]
    expected = (images[y].float() / 255 - 0.5) / 0.25
    assert torch.allclose(x, expected, atol=1e-5)


def test_augmenter_keeps_shape_and_flips():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(4, 3, 1, 1)
    flipped = Augmenter({"hflip": 1.0}, torch.Generator().manual_seed(0))(x)
    assert torch.equal(flipped, x.flip(-1))
    turned = Augmenter({"rotate_degrees": 10, "translate": 0.1}, torch.Generator())(x)
    assert turned.shape == x.shape
    assert not Augmenter({"enabled": False, "hflip": 1.0}, torch.Generator()).enabled


def test_missing_image_is_a_data_error(tiny_cfg, tmp_path, digits_dir):
    (tmp_path / "train").mkdir()
    (tmp_path / "train.csv").write_text("ID,target\nnope.png,1\n")
    with pytest.raises(DataError, match="image not found"):
        load_train_set({**tiny_cfg, "data_dir": str(tmp_path), "limit_samples": None})


def test_amp_plan(monkeypatch):
    cpu = amp_plan(True, torch.device("cpu"))
    assert not cpu.enabled and cpu.dtype_name == "float32" and "CPU" in cpu.note
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert amp_plan(True, torch.device("cuda")).dtype == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else contextlib.nullcontext():
        fp16 = amp_plan(True, torch.device("cuda"))
    assert fp16.dtype == torch.float16 and fp16.scaler is not None
    assert not amp_plan(False, torch.device("cuda")).enabled


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mixed_precision_effective_on_cuda(tiny_cfg, tmp_path):
    import time

    from trainer.artifacts import RunDir
    from trainer.run import train

    tiny_cfg.update(mixed_precision=True, device="cuda")
    eff = train(tiny_cfg, RunDir(tmp_path / "run"), "cuda", time.time())["effective"]
    assert eff["mixed_precision"] is True
    expected = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    assert eff["amp_dtype"] == expected and eff["grad_scaler"] is (expected == "float16")


def test_parallel_decode_matches_serial(digits_dir):
    from trainer.data import decode_images, read_id_csv

    ids, _ = read_id_csv(digits_dir / "train.csv")
    serial = decode_images(digits_dir / "train", ids[:100], 16)
    assert torch.equal(serial, decode_images(digits_dir / "train", ids[:100], 16, workers=2))
