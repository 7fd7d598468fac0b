"""Embedded dataset, splits, in-memory batches and the device/AMP plan."""

from __future__ import annotations

import contextlib
import csv

import pytest
import torch
from trainer.data import Augmenter, Batches, TensorLoader, load_train_set, split_indices
from trainer.device import AmpPlan, amp_plan, pick_device
from trainer.engine import train_step
from trainer.errors import ConfigError, DataError


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
    batches = Batches(images, labels, 3, torch.device("cpu"), mean=[0.5] * 3, std=[0.25] * 3)
    a = list(TensorLoader(batches, shuffle=True, seed=3))
    b = list(TensorLoader(batches, shuffle=True, seed=3))
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


def test_the_on_device_augmentation_reads_are_tracked():
    """Issue 20 item 3: augment.* were read from a copy, so every run listed them unused and
    the runner called an option such as {augment.hflip: 1} "not honoured"."""
    from trainer.key_reads import track, unused

    cfg = track({"augment": {"enabled": True, "hflip": 0.5, "vflip": 0.0,
                             "rotate_degrees": 5, "translate": 0.1}})
    assert Augmenter(cfg.get("augment"), torch.Generator()).hflip == 0.5
    assert unused(cfg) == []
    off = track({"augment": {"enabled": False, "hflip": 0.5}})
    assert not Augmenter(off.get("augment"), torch.Generator()).enabled
    assert unused(off) == ["augment.hflip"]  # switched off: the flip changed nothing


def test_missing_image_is_a_data_error(tiny_cfg, tmp_path, digits_dir):
    (tmp_path / "train").mkdir()
    (tmp_path / "train.csv").write_text("ID,target\nnope.png,1\n")
    with pytest.raises(DataError, match="image not found"):
        load_train_set({**tiny_cfg, "data_dir": str(tmp_path), "limit_samples": None})


def test_amp_plan(monkeypatch):
    cpu = amp_plan(True, torch.device("cpu"))
    assert not cpu.enabled and cpu.dtype_name == "float32" and "CPU" in cpu.note
    asked = []

    def native_bf16(supported):
        def check(including_emulation=True):
            asked.append(including_emulation)
            return supported

        return check

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", native_bf16(True))
    bf16 = amp_plan(True, torch.device("cuda"))
    assert bf16.dtype == torch.bfloat16 and bf16.scaler is None
    assert asked == [False]  # emulated bf16 (pre-Ampere) must fall back to fp16 + scaler
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", native_bf16(False))
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else contextlib.nullcontext():
        fp16 = amp_plan(True, torch.device("cuda"))
    assert fp16.dtype == torch.float16 and fp16.scaler is not None
    assert not amp_plan(False, torch.device("cuda")).enabled


@pytest.fixture
def two_fake_gpus(monkeypatch):
    """A machine that reports two CUDA devices; set_device calls are recorded."""
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    return chosen


def test_pick_device_on_faked_cuda(two_fake_gpus):
    assert pick_device("auto") == torch.device("cuda")
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    assert two_fake_gpus == [torch.device("cuda", 1)]  # AMP checks and allocations go there
    with pytest.raises(ConfigError, match=r"2 CUDA device.*CUDA_VISIBLE_DEVICES=3,5"):
        pick_device("cuda:2")  # indices count the visible devices only
    with pytest.raises(ConfigError, match="expected auto, cpu or cuda"):
        pick_device("tpu")


def test_pick_device_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="0 CUDA device"):
        pick_device("cuda")


class _DtypeProbe(torch.nn.Linear):
    """A linear layer that records the dtype of what it computes."""

    seen: list[torch.dtype]

    def forward(self, x):
        out = super().forward(x)
        self.seen.append(out.dtype)
        return out


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_train_step_autocasts_on_the_batch_device_and_scales(dtype, monkeypatch):
    # The CUDA plan's code path, on the CPU: autocast takes the batch's device type and the
    # plan's dtype; a float16 plan steps through its GradScaler.
    model = _DtypeProbe(4, 3)
    model.seen = []
    scaler = torch.amp.GradScaler("cpu") if dtype == torch.float16 else None
    stepped = []
    if scaler is not None:
        real_step = scaler.step
        monkeypatch.setattr(scaler, "step", lambda opt: stepped.append(real_step(opt)))
    plan = AmpPlan(True, dtype, scaler, "faked")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.weight.detach().clone()
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    loss = train_step(model, x, y, torch.nn.CrossEntropyLoss(), optimizer, plan)
    assert model.seen == [dtype] and torch.isfinite(loss)
    assert len(stepped) == (1 if scaler is not None else 0)
    assert not torch.equal(model.weight, before)


def test_mixed_precision_effective_on_faked_cuda(tiny_cfg, tmp_path, monkeypatch):
    """The plan amp_plan makes for a (faked) bf16-capable GPU is the one that trains and the one
    effective reports; the tensors stay on the CPU, which autocasts to bfloat16 alike."""
    import time

    from trainer import run as run_module
    from trainer.artifacts import RunDir

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(
        run_module, "amp_plan", lambda requested, device: amp_plan(requested, torch.device("cuda"))
    )
    tiny_cfg.update(mixed_precision=True, device="cpu")
    eff = run_module.train(tiny_cfg, RunDir(tmp_path / "run"), "amp", time.time())["effective"]
    assert eff["mixed_precision"] is True
    assert eff["amp_dtype"] == "bfloat16" and eff["grad_scaler"] is False
    assert "bfloat16" in eff["amp_note"]


def test_parallel_decode_matches_serial(digits_dir):
    from trainer.data import decode_images, read_id_csv

    ids, _ = read_id_csv(digits_dir / "train.csv")
    serial = decode_images(digits_dir / "train", ids[:100], 16)
    assert torch.equal(serial, decode_images(digits_dir / "train", ids[:100], 16, workers=2))


def test_loader_workers_are_capped_by_the_runner_slot_share(monkeypatch):
    from trainer.device import loader_workers

    monkeypatch.delenv("HPSYS_MAX_WORKERS", raising=False)
    assert loader_workers(4) == 4 and loader_workers(None) == 0
    monkeypatch.setenv("HPSYS_MAX_WORKERS", "1")
    assert loader_workers(4) == 1 and loader_workers(0) == 0
