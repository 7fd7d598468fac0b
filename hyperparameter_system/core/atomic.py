"""Writes that leave either the old or the new file, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str, durable: bool = True) -> None:
    """Write to a temp file in the same folder, fsync (unless not `durable`: a file rewritten
    on every attempt need not survive a power cut), then rename over the target."""
    atomic_write_bytes(path, text.encode("utf-8"), durable)


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """atomic_write_text for bytes (a PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            _keep_mode(fh.fileno(), path)
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _temp_beside(path: Path) -> tuple[int, str]:
    """A new temp file next to `path`, created 0o666 so the umask decides its mode as for any
    new file (mkstemp's 0o600 would leave an exported report readable by its owner alone)."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(tmp)
        except FileExistsError:
            continue


def _keep_mode(fd: int, path: Path) -> None:
    """Replacing a file keeps its mode: a user's chmod survives the rewrite."""
    with contextlib.suppress(FileNotFoundError):  # a new file: the umask decides
        os.fchmod(fd, stat.S_IMODE(os.stat(path).st_mode))


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None when missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
