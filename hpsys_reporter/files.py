"""The contract's file writes, so a reader (the runner, a kill mid-write) never sees half of one.

The runner's `core/atomic.py` does the same on its side of the border; this copy is the
training side's (scripts and `codes/` must not import the runner).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import yaml

_IMPORTED = time.time()


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` whole (temp file beside it, fsync, rename)."""
    write_atomic_with(path, lambda fh: fh.write(text.encode("utf-8")))


def write_atomic_with(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """`write` fills a temp file in the same folder, synced, then os.replace: the old file whole
    or the new one, never half (text, or a checkpoint a caller streams in)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def append_line(path: Path, record: dict[str, Any]) -> None:
    """One JSON line, flushed at once: the runner's stoppers follow the file as it grows."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str) + "\n")
        fh.flush()


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object, or None when missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stop_request(path: Path, since: float) -> dict[str, Any] | None:
    """The runner's graceful stop request at `path` (its JSON; {} when unreadable), or None when
    there is none or it is older than `since` (an earlier attempt's). Cheap: one stat."""
    try:
        if path.stat().st_mtime < since:
            return None
    except OSError:
        return None
    return read_json(path) or {}


def stop_line(request: dict[str, Any]) -> str:
    """The one log line a script prints when it honours a stop request."""
    why = ", ".join(str(request[k]) for k in ("reason", "detail") if request.get(k))
    return f"stop requested ({why or 'no reason given'}): stopping"


def process_started() -> float:
    """When this process began (a forked child: its fork), so a stop request an earlier attempt
    left is told from one that came while this process imported torch; else the import time."""
    with contextlib.suppress(OSError, ValueError, IndexError, StopIteration):
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22, starttime, in clock ticks after boot
        with open("/proc/stat", encoding="ascii") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    return _IMPORTED


def key_line(path: Path, dotted: str) -> int | None:
    """The line of a dotted key in a YAML file (None when absent), for `file:line: key` errors
    worded as the runner's."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    line = None
    for part in dotted.split("."):
        if not isinstance(node, yaml.MappingNode):
            return line
        match = next(((k, v) for k, v in node.value if k.value == part), None)
        if match is None:
            return line
        line, node = match[0].start_mark.line + 1, match[1]
    return line
