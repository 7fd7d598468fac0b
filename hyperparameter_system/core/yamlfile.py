"""YAML loading that remembers where each key stands, so errors can name the file and line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hyperparameter_system.core.errors import HpsysError

KeyPath = tuple[str | int, ...]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def dotted(path: KeyPath) -> str:
    """`('models', 0, 'name')` -> `models[0].name`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class YamlDoc:
    """A loaded YAML document plus the line of every key path in it."""

    path: Path
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def where(self, key_path: KeyPath) -> str:
        """`file:line: key.path` for the nearest known ancestor's line."""
        probe = tuple(key_path)
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe)
        place = f"{self.path}:{line}" if line else str(self.path)
        return f"{place}: {dotted(key_path)}" if key_path else place


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[path + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[path + (index,)] = item.start_mark.line + 1
            _walk(item, path + (index,), lines)


def load_yaml(path: str | Path, what: str = "YAML file") -> YamlDoc:
    """Load one YAML file; every failure is an HpsysError naming the file (and line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HpsysError(str(path), f"{what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HpsysError(str(path), f"cannot read {what}: {exc}") from None
    try:  # parse once (with libyaml when present); the node tree gives the lines
        loader = _LOADER(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise HpsysError(f"{path}{line}", f"YAML syntax error: {problem}") from None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        raise HpsysError(str(path), f"YAML error: {str(exc).splitlines()[0]}") from None
    lines: dict[KeyPath, int] = {}
    try:
        if node is not None:
            _walk(node, (), lines)
    except RecursionError:  # an alias inside itself (`&a [*a]`) or absurd nesting
        raise HpsysError(str(path), "YAML error: recursive alias or nesting too deep") from None
    return YamlDoc(path=path, data=data, lines=lines)
