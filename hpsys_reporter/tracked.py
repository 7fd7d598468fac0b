"""A config mapping that records which dotted keys the run read, so result.json can list the
keys it never used (`unused_keys`) from what the code did, not from a list kept by hand.

A read is `cfg[key]`, `cfg.get(key)`, `key in cfg`, `setdefault`, `pop`, or `.items()` /
`.values()` (they hand every value out). Listing names (`for k in cfg`, `.keys()`) is not a
read. Nested mappings are tracked too, under their dotted prefix. Serialising (pickle, deepcopy,
yaml.safe_dump, `plain()`) reads nothing and gives plain dicts.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml


class TrackedDict(dict):
    """A dict that notes every key read into a set shared with its nested mappings."""

    def __init__(self, data: dict[str, Any], reads: set[str] | None = None, prefix: str = ""):
        super().__init__()
        self.reads: set[str] = set() if reads is None else reads
        self.prefix = prefix
        for key, value in data.items():
            dict.__setitem__(self, key, _wrap(value, self.reads, f"{prefix}{key}."))

    def _note(self, key: Any) -> None:
        self.reads.add(f"{self.prefix}{key}")

    def __getitem__(self, key: Any) -> Any:
        self._note(key)
        return dict.__getitem__(self, key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._note(key)
        return dict.get(self, key, default)

    def __contains__(self, key: object) -> bool:
        self._note(key)
        return dict.__contains__(self, key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self._note(key)
        return dict.setdefault(self, key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        self._note(key)
        return dict.pop(self, key, *default)

    def items(self):  # type: ignore[override]
        for key in dict.keys(self):
            self._note(key)
        return dict.items(self)

    def values(self):  # type: ignore[override]
        for key in dict.keys(self):
            self._note(key)
        return dict.values(self)

    def __reduce_ex__(self, protocol: Any) -> Any:  # pickle / torch.save: a plain dict
        return (dict, (plain(self),))

    def __deepcopy__(self, memo: dict) -> dict:
        return copy.deepcopy(plain(self), memo)

    def __copy__(self) -> dict:
        return dict(dict.items(self))


def _wrap(value: Any, reads: set[str], prefix: str) -> Any:
    return TrackedDict(value, reads, prefix) if isinstance(value, dict) else value


def track(cfg: dict[str, Any]) -> TrackedDict:
    """`cfg` as a TrackedDict with an empty read set."""
    return cfg if isinstance(cfg, TrackedDict) else TrackedDict(cfg)


def plain(value: Any) -> Any:
    """A plain-dict deep copy that reads nothing (for W&B, YAML, checkpoints)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in dict.items(value)}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def flat_keys(cfg: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every dotted key of a mapping, parents before their children: what an unknown key is
    matched against, on both sides. It reads nothing of a TrackedDict."""
    out = []
    for key, value in (dict.items(cfg) if isinstance(cfg, dict) else cfg.items()):
        out.append(f"{prefix}{key}")
        if isinstance(value, Mapping):
            out.extend(flat_keys(value, f"{prefix}{key}."))
    return out


def unused(cfg: dict[str, Any]) -> list[str]:
    """The dotted keys nothing read: a key counts as read when it or one of its descendants
    was (reading scheduler_params.T_max reads scheduler_params)."""
    reads = getattr(cfg, "reads", set())
    used = set()
    for key in reads:
        parts = key.split(".")
        used.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return [key for key in flat_keys(cfg) if key not in used]


yaml.SafeDumper.add_representer(
    TrackedDict, lambda dumper, data: dumper.represent_dict(plain(data))
)
