"""optimizer: name, lr, weight_decay, momentum -> `opt_AdamW_lr0.001_wd0.001`."""

from hyperparameter_system.categories.base import Category, Param, parts
from hyperparameter_system.hookspecs import hookimpl


class OptimizerCategory(Category):
    name = "optimizer"
    params = (
        Param("name", "optimizer_name", str, required=True),
        Param("lr", "lr", float, minimum=0.0),
        Param("weight_decay", "weight_decay", float, minimum=0.0),
        Param("momentum", "momentum", float, minimum=0.0, maximum=1.0),
    )

    def run_name(self, option):
        pairs = (("lr", "lr"), ("mom", "momentum"), ("wd", "weight_decay"))
        return f"opt_{option['name']}{parts(option, *pairs)}"


@hookimpl
def register_categories(register):
    register(OptimizerCategory())
