"""A tiny LightningModule on scikit-learn's digits that joins the matrix through one callback
(`HpsysCallback`) and one `ckpt_path`: the lines marked `# hpsys`."""

import time

import lightning as L
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from hpsys_reporter.lightning import HpsysCallback


class Digits(L.LightningModule):
    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(nn.Linear(64, cfg["hidden"]), nn.ReLU(),
                                 nn.Linear(cfg["hidden"], 10))
        self.preds: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def training_step(self, batch, _):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.preds.append(logits.argmax(1))
        self.targets.append(y)

    def on_validation_epoch_end(self):
        pred, true = torch.cat(self.preds), torch.cat(self.targets)
        self.preds.clear()
        self.targets.clear()
        f1 = [2 * ((pred == c) & (true == c)).sum() / max(1, (pred == c).sum() + (true == c).sum())
              for c in range(10)]
        self.log_dict({"val_acc": (pred == true).float().mean(), "val_f1": torch.stack(f1).mean()})

    def on_train_epoch_end(self):
        time.sleep(self.cfg["pause_s"])

    def configure_optimizers(self):
        optimizer = getattr(torch.optim, self.cfg["optimizer_name"])
        return optimizer(self.parameters(), lr=self.cfg["lr"],
                         weight_decay=self.cfg["weight_decay"])


def main() -> None:
    hpsys = HpsysCallback()  # hpsys: config, run folder, resume point
    cfg = hpsys.run.config
    L.seed_everything(cfg["random_seed"], verbose=False)
    x, y = load_digits(return_X_y=True)
    data = TensorDataset(torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y))
    train, val = torch.utils.data.random_split(data, [0.8, 0.2])
    trainer = L.Trainer(max_epochs=cfg["epochs"], accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=hpsys.run.dir,
                        callbacks=[hpsys])  # hpsys
    trainer.fit(Digits(cfg), DataLoader(train, batch_size=cfg["batch_size"], shuffle=True),
                DataLoader(val, batch_size=256), ckpt_path=hpsys.ckpt_path)  # hpsys


if __name__ == "__main__":
    main()
