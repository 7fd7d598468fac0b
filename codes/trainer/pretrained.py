"""Pretrained weights: fail in seconds, with one line, when they can be neither found nor fetched.

Without this a machine with no network spends about a minute in the hub's retries (each logged
on stderr) before timm gives up with a traceback-sized message.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from trainer.errors import ConfigError

REACH_TIMEOUT_S = 3.0
HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm looks for on the hub


def quiet_hub() -> None:
    """Keep the hub's retry warnings off stderr: our one error line says what went wrong."""
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()


def _hub_cached(hub_id: str, filename: str | None) -> bool:
    """True when timm's weight file for `hub_id` is already in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    repo, _, revision = hub_id.partition("@")
    names = (filename,) if filename else HUB_FILES
    return any(
        isinstance(try_to_load_from_cache(repo, name, revision=revision or None), str)
        for name in names
    )


class Weights(NamedTuple):
    """Where a model's pretrained weights come from and whether they are already local."""

    what: str  # hub repository or URL
    server: str  # what must answer to download them
    cache: str  # where they would be cached
    cached: bool


def reachable(endpoint: str, timeout: float = REACH_TIMEOUT_S) -> bool:
    """Whether `endpoint` answers at all (any HTTP status) within `timeout` seconds, through
    the hub's own HTTP session so that its proxy and certificate settings apply."""
    from huggingface_hub import get_session

    try:
        get_session().head(endpoint, timeout=timeout)
    except Exception:  # connection refused, DNS, timeout, TLS: all mean "cannot download"
        return False
    return True


def weights_of(name: str) -> Weights | None:
    """The source timm loads `name`'s weights from (the hub first, as timm does), or None when
    they need no network (a local file or state dict)."""
    import torch
    from huggingface_hub import constants
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None or cfg.file or cfg.state_dict:
        return None
    if cfg.hf_hub_id:
        cached = _hub_cached(cfg.hf_hub_id, cfg.hf_hub_filename)
        return Weights(cfg.hf_hub_id, constants.ENDPOINT, constants.HF_HUB_CACHE, cached)
    if cfg.url:
        parts = urlsplit(cfg.url)
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        cached = (cache / Path(parts.path).name).is_file()
        return Weights(cfg.url, f"{parts.scheme}://{parts.netloc}", str(cache), cached)
    return None


def ensure_available(name: str) -> None:
    """Raise a one-line ConfigError when `name`'s weights are not cached and cannot be fetched."""
    from huggingface_hub import constants

    quiet_hub()
    weights = weights_of(name)
    if weights is None or weights.cached:
        return
    if constants.HF_HUB_OFFLINE and weights.server == constants.ENDPOINT:
        why = "HF_HUB_OFFLINE is set"
    elif not reachable(weights.server):
        why = f"no network ({weights.server} cannot be reached)"
    else:
        return
    raise ConfigError(
        f"pretrained: the weights of {name!r} ({weights.what}) could not be downloaded: {why}, "
        f"and they are not in the local cache ({weights.cache}); "
        "pre-download them into that cache where there is network access "
        f"(python -c \"import timm; timm.create_model('{name}', pretrained=True)\"), "
        "or set pretrained: false"
    )
