#!/usr/bin/env python3
"""A stand-in trainer whose score has a known optimum, for search tests and bench/search.py.

val_f1 peaks at lr = 10**-2.5 and weight_decay = 1e-4 (AdamW; other optimizers score less),
rising over the config's `epochs` towards that score; everything else is fake_train.py's
(the contract, metrics.jsonl per epoch, stop requests honoured, `fake.epoch_s` per epoch).
"""

import math
import os
import sys

import fake_train
import yaml

OPTIMUM = {"lr": -2.5, "weight_decay": -4.0}


def score(config):
    lr = math.log10(max(float(config.get("lr", 1e-3)), 1e-12))
    wd = math.log10(max(float(config.get("weight_decay", 1e-4)), 1e-12))
    value = math.exp(-((lr - OPTIMUM["lr"]) ** 2) / 0.5 - ((wd - OPTIMUM["weight_decay"]) ** 2) / 4)
    penalty = 0.0 if str(config.get("optimizer_name", "AdamW")).lower() == "adamw" else 0.1
    return max(0.0, 0.95 * value - penalty) + 0.02


def main():
    argv = sys.argv[1:]
    path = argv[argv.index("--config") + 1]
    with open(path, encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    epochs = int(config.get("epochs", 2))
    target = score(config)
    fake = dict(config.get("fake") or {})
    fake["curve"] = [round(target * (0.6 + 0.4 * e / epochs), 6) for e in range(1, epochs + 1)]
    config["fake"] = fake
    run_dir = os.environ["HPSYS_RUN_DIR"]
    os.makedirs(run_dir, exist_ok=True)
    shaped = os.path.join(run_dir, "landscape_config.yaml")
    with open(shaped, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh)
    sys.argv = [sys.argv[0], "--config", shaped]
    return fake_train.main()


if __name__ == "__main__":
    sys.exit(main())
