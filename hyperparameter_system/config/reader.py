"""Typed access to one section of a YAML document, with errors that point at its line."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hyperparameter_system.core.errors import HpsysError, close_match
from hyperparameter_system.core.yamlfile import KeyPath, YamlDoc

TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer", float: "a number",
              list: "a list", dict: "a mapping", type(None): "null"}


class Reader:
    """Typed access to one section of the document, with errors that point at the line."""

    def __init__(self, doc: YamlDoc, path: KeyPath, data: Any, schema: Mapping[str, tuple]):
        self.doc, self.path, self.schema = doc, path, schema
        if not isinstance(data, Mapping):
            raise HpsysError(doc.where(path), f"expected a mapping, got {kind_of(data)}")
        self.data = data
        for key in data:
            if key not in schema:
                raise HpsysError(
                    doc.where(path + (key,)),
                    f"unknown key{close_match(key, schema)}; expected one of {', '.join(schema)}",
                )

    def where(self, key: str | int | None = None) -> str:
        return self.doc.where(self.path + ((key,) if key is not None else ()))

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self.data:
            return default
        value = self.data[key]
        kinds = self.schema[key]
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            expected = " or ".join(TYPE_NAMES.get(k, k.__name__) for k in kinds)
            raise HpsysError(self.where(key), f"expected {expected}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):  # `.nan`, `.inf`
            raise HpsysError(self.where(key), f"expected a finite number, got {value!r}")
        return value

    def number(self, key: str, default: Any, minimum: float) -> Any:
        value = self.get(key, default)
        if value is not None and value < minimum:
            raise HpsysError(self.where(key), f"expected a value >= {minimum}, got {value!r}")
        return value

    def choice(self, key: str, default: Any, choices: Sequence[Any]) -> Any:
        value = self.get(key, default)
        if value not in choices:
            shown = ", ".join("null" if c is None else str(c) for c in choices)
            raise HpsysError(
                self.where(key), f"expected one of {shown}{close_match(value, map(str, choices))}"
            )
        return value


def kind_of(value: Any) -> str:
    return TYPE_NAMES.get(type(value), type(value).__name__)


def resolve(root: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else root / path


