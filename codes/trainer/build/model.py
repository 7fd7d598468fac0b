"""The timm model (or a `_target_` class) with its head sized to the data and frozen as
fine_tuning asks; unknown names fail early with the closest timm names."""

from __future__ import annotations

from typing import Any

from torch import nn

from trainer.build.targets import call_target
from trainer.errors import ConfigError, close_matches


def check_model_name(name: str) -> None:
    """Fail early, with close matches, on a name timm does not know: the architecture, and the
    pretrained tag after the dot (timm.is_model checks only the architecture)."""
    import timm
    from timm.models import get_arch_pretrained_cfgs, split_model_name_tag

    if not timm.is_model(name):
        hint = close_matches(name, timm.list_models(), n=5)
        raise ConfigError(f"model_name: unknown timm model {name!r}{hint}")
    arch, tag = split_model_name_tag(name)
    tagged = list(get_arch_pretrained_cfgs(arch))  # 'arch.tag' names
    if tag and name not in tagged:
        hint = close_matches(name, tagged, n=5) or (
            f" (known: {', '.join(tagged)})" if tagged else f" ({arch} has none; use {arch!r})"
        )
        raise ConfigError(f"model_name: unknown pretrained tag {tag!r} of {arch!r}{hint}")


def build_model(cfg: dict[str, Any], num_classes: int) -> nn.Module:
    """A timm model (or `_target_` class) with a `num_classes` head, frozen as fine_tuning asks."""
    spec = cfg["model_name"]
    mode = cfg.get("fine_tuning", "full")
    pretrained = bool(cfg.get("pretrained", False)) and mode != "scratch"
    if cfg.get("pretrained") and mode == "scratch":
        print("note: fine_tuning: scratch trains from random weights; pretrained is ignored")
    if isinstance(spec, dict):
        model = call_target(spec, "model_name", num_classes=num_classes)
    else:
        check_model_name(spec)
        kwargs = dict(cfg.get("model_kwargs") or {})
        if _fixed_input_size(spec) and "image_size" in cfg:
            kwargs.setdefault("img_size", int(cfg["image_size"]))
        model = _create_timm(spec, pretrained, num_classes, kwargs)
    model.loaded_pretrained = pretrained and not isinstance(spec, dict)
    if mode == "head":
        if not hasattr(model, "get_classifier"):
            raise ConfigError("fine_tuning: 'head' needs a model with get_classifier() (timm)")
        model.requires_grad_(False)
        model.get_classifier().requires_grad_(True)
    return model


def _fixed_input_size(name: str) -> bool:
    """Whether a timm model is built for one input size (ViT, Swin...): it then needs
    `img_size`, and timm resamples pretrained position embeddings to it."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    return bool(cfg and cfg.fixed_input_size)


def _create_timm(name: str, pretrained: bool, num_classes: int, kwargs: dict) -> nn.Module:
    import timm

    if pretrained:
        from trainer.pretrained import quiet_hub

        quiet_hub()
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **kwargs)
    except TypeError as exc:
        if "img_size" in str(exc):
            raise ConfigError(
                f"image_size: {name} has a fixed input size and cannot be built for another "
                f"({exc}); expected its own size, or a model without a fixed one"
            ) from None
        raise ConfigError(f"model_kwargs: {name} rejected them ({exc})") from None
    except Exception as exc:  # hub/network errors come in many types
        if not pretrained:
            raise
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"pretrained: the weights of {name!r} could not be downloaded or found in the cache "
            f"({type(exc).__name__}: {first}); set pretrained: false, or pre-download them "
            "with network access (HF_HUB_OFFLINE=0) before training offline"
        ) from None
