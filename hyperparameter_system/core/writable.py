"""Where a user-given output goes: asked before anything depends on it, by really writing."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from hyperparameter_system.core.errors import HpsysError

STDOUT = "-"  # an output path of `-` is standard output


def writable_folder(where: str, folder: Path) -> None:
    """Create `folder` (and its parents) and a file in it, or raise HpsysError at `where` naming
    the folder. A real write: os.access says yes to root, even for /proc or a read-only mount."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HpsysError(where, f"cannot create {folder}: {exc.strerror or exc}") from None
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".hpsys-probe-"):
            pass
    except OSError as exc:
        raise HpsysError(where, f"cannot create a file in {folder}: "
                                f"{exc.strerror or exc}") from None


def output_file(where: str, path: str | Path) -> Path | None:
    """file_target for a path where `-` means standard output (then None)."""
    return None if str(path) == STDOUT else file_target(where, path)


def file_target(where: str, path: str | Path) -> Path:
    """The regular file a user-given output path writes to, its folder checked writable. A
    symlink resolves to its target, so a replacing write keeps the link; a device, FIFO, socket
    or folder is refused: replacing `/dev/null` with a report, or blocking forever on a FIFO,
    is never what was meant."""
    target = Path(os.path.realpath(path))
    kind = _kind(target)
    if kind == "folder":
        raise HpsysError(where, "expected a file path, got a folder")
    if kind not in (None, "file"):
        raise HpsysError(where, f"a {kind}, not a regular file: name a file to write")
    writable_folder(where, target.parent)
    return target


def output_folder(where: str, path: str | Path) -> Path:
    """The folder a user-given output folder writes into (a symlink to a folder is followed),
    created and checked writable; `-` or an existing non-folder is refused."""
    if str(path) == STDOUT:
        raise HpsysError(where, "expected a folder; `-` (standard output) takes one file")
    target = Path(os.path.realpath(path))
    if _kind(target) not in (None, "folder"):
        raise HpsysError(where, "expected a folder, got a file")
    writable_folder(where, target)
    return target


def _kind(path: Path) -> str | None:
    """What is at `path` (links followed), in words; None when nothing is."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # nothing there, or unreadable: the write that follows says why
        return None
    kinds = ((stat.S_ISREG, "file"), (stat.S_ISDIR, "folder"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"))
    return next((name for test, name in kinds if test(mode)), "special file")
