"""File names from user-given model, category and option names: no `/`, `..`, quotes or `$`."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


def safe_name(text: str, max_len: int = 120) -> str:
    """A portable file name; distinct texts that fold to the same name get a hash suffix."""
    folded = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    name = _UNSAFE.sub("_", folded).strip("._") or "x"
    name = re.sub(r"\.{2,}", "_", name)
    if name != text or len(name) > max_len:
        digest = hashlib.sha256(str(text).encode()).hexdigest()[:6]
        name = f"{name[: max_len - 7]}-{digest}"
    return name
