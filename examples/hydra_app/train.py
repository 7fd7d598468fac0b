"""A Hydra app (`@hydra.main`, conf/ with a defaults list) that joins the matrix: the model entry
says `script_args: hydra` and the app hands its cfg and output folder to hpsys_reporter (the
lines marked `# hpsys`). By hand: `python examples/hydra_app/train.py lr=0.1 model.alpha=0.01`."""

from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import f1_score, log_loss

import hpsys_reporter as hpsys


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    out = Path(HydraConfig.get().runtime.output_dir)
    run = hpsys.start(OmegaConf.to_container(cfg, resolve=True), run_dir=out)  # hpsys
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(cfg.random_seed).permutation(len(y))
    val, train = order[:360], order[360:]
    model = SGDClassifier(loss="log_loss", alpha=cfg.model.alpha, learning_rate="constant",
                          eta0=cfg.lr, random_state=cfg.random_seed)
    for epoch in range(run.start_epoch, cfg.epochs + 1):  # hpsys
        model.partial_fit(x[train] / 16.0, y[train], classes=np.arange(10))
        pred = model.predict(x[val] / 16.0)
        run.log(epoch, val_f1=f1_score(y[val], pred, average="macro"),  # hpsys
                val_loss=log_loss(y[val], model.predict_proba(x[val] / 16.0), labels=range(10)))
        if run.should_stop():  # hpsys
            break
    np.save(out / "coef.npy", model.coef_)
    run.finish(effective={"model": type(model).__name__, "alpha": model.alpha,  # hpsys
                          "lr": model.eta0, "epochs": cfg.epochs})


if __name__ == "__main__":
    main()
