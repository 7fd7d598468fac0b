"""A plain-PyTorch classifier of the embedded digits that joins the matrix through
hpsys_reporter: the lines marked `# hpsys` are all it takes (config, metrics, resume, pruning,
result.json). By hand: `python examples/tiny_torch/train.py` (outputs/ gets its run folder)."""

import csv
import inspect
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

import hpsys_reporter as hpsys

run = hpsys.start(defaults=Path(__file__).with_name("config.yaml"))  # hpsys
cfg = run.config
torch.manual_seed(cfg["random_seed"])
root = Path(cfg["data_dir"])
with open(root / cfg["train_data"], encoding="utf-8") as fh:
    rows = list(csv.DictReader(fh))[: cfg["limit_samples"]]
x = torch.tensor(np.stack([np.asarray(Image.open(root / "train" / r["ID"]), np.float32).ravel()
                           for r in rows]) / 255.0)
y = torch.tensor([int(r["target"]) for r in rows])
order = torch.randperm(len(rows))
n_val = int(len(rows) * cfg["val_split_ratio"])
val, train = order[:n_val], order[n_val:]
classes = int(y.max()) + 1
model = nn.Sequential(nn.Linear(x.shape[1], cfg["hidden"]), nn.ReLU(),
                      nn.Linear(cfg["hidden"], classes))
optimizer_class = getattr(torch.optim, cfg["optimizer_name"], None)
if not isinstance(optimizer_class, type):
    run.bad_config("optimizer_name", f"unknown optimizer {cfg['optimizer_name']!r}")  # hpsys
kwargs = {"lr": cfg["lr"], "weight_decay": cfg["weight_decay"]}
if "momentum" in inspect.signature(optimizer_class).parameters:
    kwargs["momentum"] = cfg["momentum"]
optimizer = optimizer_class(model.parameters(), **kwargs)
loss_fn = nn.CrossEntropyLoss()
if run.resume:  # hpsys: an interrupted experiment goes on from its last checkpoint
    state = torch.load(run.resume)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])


def macro_f1(pred: torch.Tensor, true: torch.Tensor) -> float:
    scores = []
    for c in range(classes):
        tp = ((pred == c) & (true == c)).sum().item()
        denom = (pred == c).sum().item() + (true == c).sum().item()
        scores.append(2 * tp / denom if denom else 0.0)
    return sum(scores) / classes


for epoch in range(run.start_epoch, cfg["epochs"] + 1):  # hpsys: start_epoch
    model.train()
    total = 0.0
    for batch in train[torch.randperm(len(train))].split(cfg["batch_size"]):
        optimizer.zero_grad()
        loss = loss_fn(model(x[batch]), y[batch])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
    model.eval()
    with torch.no_grad():
        logits = model(x[val])
    pred = logits.argmax(1)
    run.log(epoch, train_loss=total / len(train), val_loss=loss_fn(logits, y[val]),  # hpsys
            val_acc=(pred == y[val]).float().mean(), val_f1=macro_f1(pred, y[val]),
            lr=optimizer.param_groups[0]["lr"])
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "rng": torch.get_rng_state()}
    torch.save(state, run.dir / "last.pt")
    run.checkpoint("last.pt", epoch)  # hpsys
    time.sleep(cfg["pause_s"])
    if run.should_stop():  # hpsys: pruned
        break
run.finish(effective=hpsys.effective_from(optimizer=optimizer, model=model,  # hpsys
                                          batch_size=cfg["batch_size"]))
