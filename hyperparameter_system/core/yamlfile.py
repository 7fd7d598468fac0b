"""YAML loading that remembers where each key stands, so errors can name the file and line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hyperparameter_system.core.errors import HpsysError

KeyPath = tuple[str | int, ...]


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader (libyaml's when present) reading numbers as YAML 1.2 does: `1e-3` and
    `1.0e3` are numbers, as `0.001` is (YAML 1.1 leaves them strings), so one value spelt two
    ways is one experiment; a quoted '1e-3' stays a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))
_LOADER = _Loader


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


# Node visits an alias may add (a node seen again through `*name`): a config that reuses an
# anchor a few times stays far below; an alias bomb ("billion laughs") is refused at once
# instead of being expanded into gigabytes before any validation.
ALIAS_BUDGET = 10_000


class _Walk:
    """One pass over the node tree: the line of every key path, each mapping's keys unique,
    and the nodes reached again through aliases counted against ALIAS_BUDGET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: dict[KeyPath, int] = {}
        self.seen: set[int] = set()
        self.repeats = 0

    def node(self, node: yaml.Node, at: KeyPath) -> None:
        first = id(node) not in self.seen
        if first:
            self.seen.add(id(node))
        else:
            self.repeats += 1
            if self.repeats > ALIAS_BUDGET:
                raise HpsysError(
                    f"{self.path}:{node.start_mark.line + 1}",
                    f"YAML error: aliases expand to more than {ALIAS_BUDGET} nodes "
                    "(an alias bomb?); write the values out or reuse fewer anchors")
        if isinstance(node, yaml.MappingNode):
            if first:
                self.unique_keys(node, at)
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue  # a list or mapping as key: the constructor refuses it
                key = key_node.value
                self.lines[at + (key,)] = key_node.start_mark.line + 1
                self.node(value_node, at + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.lines[at + (index,)] = item.start_mark.line + 1
                self.node(item, at + (index,))

    def unique_keys(self, node: yaml.MappingNode, at: KeyPath) -> None:
        """A key given twice would silently drop the first value: told with both lines."""
        first_line: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            line, ident = key_node.start_mark.line + 1, (key_node.tag, key_node.value)
            if ident in first_line:
                earlier = first_line[ident]
                raise HpsysError(f"{self.path}:{line}: {dotted(at + (key_node.value,))}",
                                 f"duplicate key, also at line {earlier}: the first value "
                                 "would be dropped; keep one")
            first_line[ident] = line


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
            walk = _Walk(path)
            if node is not None:  # before construction, which drops duplicate keys
                walk.node(node, ())
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise HpsysError(f"{path}{line}", f"YAML syntax error: {problem}") from None
    except RecursionError:  # an alias inside itself (`&a [*a]`) or absurd nesting
        raise HpsysError(str(path), "YAML error: recursive alias or nesting too deep") from None
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise HpsysError(str(path), f"YAML error: {str(exc).splitlines()[0]}") from None
    return YamlDoc(path=path, data=data, lines=walk.lines)
