"""optimizer: name, lr, weight_decay, momentum -> `opt_AdamW_lr0.001_wd0.001`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hyperparameter_system.categories.base import Category, Param, Register, parts
from hyperparameter_system.hookspecs import hookimpl

# The names codes/train.py documents, then every optimizer of timm's factory (timm 1.0's
# list_optimizers(); the runner never imports timm, a test checks each is still timm's).
OPTIMIZERS = ("AdamW", "Adam", "SGD", "RMSprop", "RAdam", "NAdam", "Adafactor")
TIMM_OPTIMIZERS = frozenset({
    "adabelief", "adadelta", "adafactor", "adafactorbv", "adafactorbvc", "adagrad", "adahessian",
    "adam", "adamax", "adamc", "adamp", "adamuon", "adamw", "adamwlegacy", "adan", "adanw",
    "adopt", "adoptc", "adoptw", "bnbadam", "bnbadam8bit", "bnbadamw", "bnbadamw8bit",
    "bnbademamix", "bnbademamix8bit", "bnblion", "bnblion8bit", "bnbsgd", "bnbsgd8bit",
    "cadafactor", "cadafactorbv", "cadafactorbvc", "cadamc", "cadamp", "cadamw", "cadan", "cadanw",
    "cadopt", "cadoptc", "cadoptw", "clamb", "clambw", "claprop", "clion", "clionc", "cmars",
    "cnadamc", "cnadamw", "crmsproptf", "csgdc", "csgdp", "csgdw", "fusedadam", "fusedadamw",
    "fusedlamb", "fusednovograd", "fusedsgd", "kron", "kronc", "kronw", "lamb", "lambc", "lambcd",
    "lambcw", "lambw", "laprop", "lapropc", "larc", "lars", "lion", "lionc", "madgrad", "madgradw",
    "mars", "momentum", "muon", "nadam", "nadamc", "nadamlegacy", "nadamuon", "nadamw", "nesterov",
    "nesterovw", "nlarc", "nlars", "nmuon", "novograd", "novogradc", "novogradw", "radabelief",
    "radam", "radamlegacy", "radamw", "rmsprop", "rmsproptf", "rmsproptfc", "rmsproptfw", "sgd",
    "sgdc", "sgdp", "sgdw"
})


class OptimizerCategory(Category):
    name = "optimizer"
    params = (
        Param("name", "optimizer_name", str, required=True, listed=OPTIMIZERS,
              choices=TIMM_OPTIMIZERS, others="another of timm's optimizers"),
        Param("lr", "lr", float, above=0.0),
        Param("weight_decay", "weight_decay", float, minimum=0.0),
        Param("momentum", "momentum", float, minimum=0.0, maximum=1.0),
    )

    def run_name(self, option: Mapping[str, Any]) -> str:
        pairs = (("lr", "lr"), ("mom", "momentum"), ("wd", "weight_decay"))
        return f"opt_{option['name']}{parts(option, *pairs)}"


@hookimpl
def register_categories(register: Register) -> None:
    register(OptimizerCategory())
