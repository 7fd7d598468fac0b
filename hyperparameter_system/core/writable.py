"""Is a folder writable: asked by really creating a file in it, before anything depends on it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hyperparameter_system.core.errors import HpsysError


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
