"""augmentation: a policy set and switches -> `aug_dynamic_eda`.

`type` names a policy set: `dynamic` turns on dynamic_augmentation.enabled, `minimal` only the
switches given, any other name (mixup, cutmix, basic, middle, aggressive, ...) sets
`augmentation.<type>: true`; `eda`,
`mixup` and `cutmix` set `augmentation.<key>`, `dynamic_enabled` sets
`dynamic_augmentation.enabled`. Every option turns `online_augmentation` on. The engine's schema
says which policies it knows, so an unknown one is refused before launch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hyperparameter_system.categories.base import (
    LABEL_KEYS,
    Category,
    Locate,
    Param,
    Register,
    Schema,
)
from hyperparameter_system.core.errors import HpsysError, close_match
from hyperparameter_system.hookspecs import hookimpl

DYNAMIC = "dynamic"
# Policy sets that are not one engine policy: minimal is the switches alone (e.g. eda only).
SETS: dict[str, dict[str, Any]] = {"minimal": {}, DYNAMIC: {"dynamic_augmentation.enabled": True}}


class AugmentationCategory(Category):
    name = "augmentation"
    params = (
        Param("type", "augmentation", str, required=True),  # target: see changes()
        Param("eda", "augmentation.eda", bool),
        Param("dynamic_enabled", "dynamic_augmentation.enabled", bool),
        Param("mixup", "augmentation.mixup", bool),
        Param("cutmix", "augmentation.cutmix", bool),
    )

    def validate(self, option: Mapping[str, Any], locate: Locate,
                 schemas: Sequence[Schema] = ()) -> None:
        super().validate(option, locate, schemas)
        kind = option.get("type")
        target = f"augmentation.{kind}"
        for schema in schemas:  # a policy the engine does not publish would change nothing
            if kind not in SETS and not schema.known(target):
                known = [k.split(".", 1)[1] for k in getattr(schema, "keys", {})
                         if k.startswith("augmentation.")]
                raise HpsysError(locate("type"), f"unknown augmentation policy {kind!r}"
                                                 f"{close_match(str(kind), known)}; expected "
                                                 f"{', '.join(SETS)} or one of "
                                                 f"{', '.join(known)}")

    def changes(self, option: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "type" in option:
            kind = str(option["type"])
            out["online_augmentation"] = True
            out.update(SETS.get(kind, {f"augmentation.{kind}": True}))
        for key, value in option.items():
            if key in LABEL_KEYS or key == "type":
                continue
            param = self._param(key)
            out[param.target if param else key] = value
        return out

    def run_name(self, option: Mapping[str, Any]) -> str:
        flags = "".join(f"_{key}" for key in ("eda", "mixup", "cutmix") if option.get(key) is True)
        return f"aug_{option['type']}{flags}"


@hookimpl
def register_categories(register: Register) -> None:
    register(AugmentationCategory())
