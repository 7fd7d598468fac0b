"""batch_size: batch_size, mixed_precision -> `batch32_MP` (or `batch64` without AMP)."""

from hyperparameter_system.categories.base import Category, Param
from hyperparameter_system.hookspecs import hookimpl


class BatchSizeCategory(Category):
    name = "batch_size"
    params = (
        Param("batch_size", "batch_size", int, required=True, minimum=1),
        Param("mixed_precision", "mixed_precision", bool),
    )

    def run_name(self, option):
        return f"batch{option['batch_size']}{'_MP' if option.get('mixed_precision') else ''}"


@hookimpl
def register_categories(register):
    register(BatchSizeCategory())
