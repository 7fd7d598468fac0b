"""Hydra primary configs (a `defaults:` list over config groups in the config's folder) composed
with Hydra's compose API into one plain mapping, for both sides of the script contract: the
runner composes a model's base config before it writes the one resolved temp config, and
`codes/train.py --config conf/config.yaml optimizer=sgd` composes the same way by hand.

A group choice (`optimizer=sgd`: `conf/optimizer/sgd.yaml`) is an override whose key names a
group folder; every other override is a value override (hpsys_reporter.overrides) applied
after composing, so interpolations see it. hydra-core is imported only for a primary config.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from hpsys_reporter.overrides import OverrideError, parse


def is_primary(data: Any) -> bool:
    """Whether a loaded config is a Hydra primary config (it has a `defaults:` list)."""
    return isinstance(data, Mapping) and isinstance(data.get("defaults"), list)


def groups(path: Path) -> dict[str, list[str]]:
    """The config groups beside a primary config: folder name -> its entries (file stems)."""
    folder = path.parent
    return {d.name: sorted(f.stem for f in d.glob("*.yaml"))
            for d in sorted(folder.iterdir()) if d.is_dir() and any(d.glob("*.yaml"))}


def split(path: Path, texts: Iterable[str]) -> tuple[list[str], list[str]]:
    """(group choices, value overrides) of a primary config's overrides, in their order."""
    known = groups(path)
    choices: list[str] = []
    values: list[str] = []
    for text in texts:
        key = text.split("=", 1)[0].lstrip("+~")
        (choices if key in known or "/" in key else values).append(text)
    return choices, values


def check_choice(path: Path, text: str) -> tuple[str, str]:
    """(group, entry) of a group choice such as `optimizer=sgd`; an entry not in the group is
    an OverrideError naming the closest entry and listing them all."""
    override = parse(text)
    group, entry = override.key, override.value
    entries = groups(path).get(group, [])
    if not isinstance(entry, str) or entry not in entries:
        near = difflib.get_close_matches(str(entry), entries, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise OverrideError(f"{group}: unknown choice {entry!r}{hint}; expected one of "
                            f"{', '.join(entries)} ({path.parent.name}/{group}/)")
    return group, entry


def compose(path: Path, choices: Iterable[str] = ()) -> dict[str, Any]:
    """The primary config at `path` composed with Hydra's compose API and the group choices,
    interpolations left for the caller to resolve (after its value overrides)."""
    choices = list(choices)
    for text in choices:
        check_choice(path, text)
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(path.parent.resolve()), version_base=None):
            cfg = hydra_compose(config_name=path.stem, overrides=choices)
    except (HydraException, OmegaConfBaseException) as exc:
        first = str(exc).strip().splitlines()
        raise OverrideError(f"cannot compose {path} ({first[0] if first else exc})") from None
    except yaml.YAMLError as exc:  # a group entry's own syntax: its file and line
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.name}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise OverrideError(f"cannot compose {path} ({where}: YAML syntax error: "
                            f"{problem})") from None
    out = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(out, dict)
    return {str(k): v for k, v in out.items()}


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The dotted leaves of `new` that differ from `old`: what a group choice changes in a
    composed base (a category option naming a group entry becomes these config changes)."""
    return _diff(old, new, "")


def _diff(old: Any, new: Any, prefix: str) -> dict[str, Any]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: dict[str, Any] = {}
        for key, value in new.items():
            out.update(_diff(old.get(key), value, f"{prefix}{key}."))
        return out
    return {} if old == new else {prefix[:-1]: new}
