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


# W&B's own rule for a project name (wandb_settings.validate_project,
# wandb.sdk.artifacts._validators.validate_project_name): at most 128 characters, none of these.
WANDB_PROJECT_MAXLEN = 128
_WANDB_PROJECT_BAD = re.compile(r"[/\\#?%:\r\n]")


def wandb_project_name(text: str) -> str:
    """A W&B project name from a model name: `.`, `-`, `/` and every character W&B refuses (the
    `:` of `hf-hub:timm/...`) become `_`; one too long is cut, with a hash of the whole."""
    name = _WANDB_PROJECT_BAD.sub("_", str(text).replace(".", "_").replace("-", "_")) or "_"
    if len(name) > WANDB_PROJECT_MAXLEN:
        digest = hashlib.sha256(str(text).encode()).hexdigest()[:8]
        name = f"{name[: WANDB_PROJECT_MAXLEN - 9]}_{digest}"
    return name
