"""Rewrite `trainer/schema_names.py` (timm's optimizer names, the registry's scheduler
parameters) from the installed timm and torch: `python codes/trainer/regenerate_names.py`.

Kept apart from the names it writes, so the data module imports nothing and the registry that
reads it is never imported back (no import circle); tests/codes/test_schema.py compares both.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import sys
from pathlib import Path

NAMES_FILE = Path(__file__).resolve().with_name("schema_names.py")


def scheduler_params() -> list[str]:
    """The constructor parameters of every registered scheduler (imports torch); for one that
    takes them in a record (SchedulerInfo.record), the record's fields."""
    from trainer.registry import SCHEDULERS

    names: set[str] = set()
    for info in SCHEDULERS:
        if info.record is not None:
            names.update(f.name for f in dataclasses.fields(info.record))
            continue
        module, cls = info.target.rsplit(".", 1)
        signature = inspect.signature(getattr(importlib.import_module(module), cls))
        names.update(p for p in signature.parameters
                     if p not in ("self", "optimizer", "verbose", "lr_lambda"))
    return sorted(names)


def _replace_block(text: str, marker: str, names: list[str]) -> str:
    """`text` with the lines between `# BEGIN marker` and `# END marker` set to `names`."""
    lines = "".join(f'    "{name}",\n' for name in names)
    return re.sub(
        rf"(    # BEGIN {marker}\n).*?(    # END {marker}\n)",
        lambda m: m.group(1) + lines + m.group(2),
        text,
        flags=re.S,
    )


def regenerate(path: Path = NAMES_FILE) -> None:
    """Rewrite the generated blocks of `path` from the installed timm and torch."""
    from timm.optim import list_optimizers

    optimizers, params = list(list_optimizers()), scheduler_params()
    text = _replace_block(path.read_text(encoding="utf-8"), "GENERATED", optimizers)
    path.write_text(_replace_block(text, "GENERATED PARAMS", params), encoding="utf-8")
    print(f"wrote {len(optimizers)} optimizer names, {len(params)} scheduler parameters to {path}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # codes/, for `trainer`
    regenerate()
