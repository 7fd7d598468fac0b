"""early_stopping: patience -> `es_patience10`."""

from hyperparameter_system.categories.base import Category, Param
from hyperparameter_system.hookspecs import hookimpl


class EarlyStoppingCategory(Category):
    name = "early_stopping"
    params = (Param("patience", "patience", int, required=True, minimum=0),)

    def run_name(self, option):
        return f"es_patience{option['patience']}"


@hookimpl
def register_categories(register):
    register(EarlyStoppingCategory())
