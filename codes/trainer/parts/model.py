"""The timm model (or a `_target_` class) with its head sized to the data and frozen as
fine_tuning asks; unknown names fail early with the closest timm names.

V2 model keys: `timm: {activation, drop_rate, drop_path_rate, <any create_model kwarg>}`
(`activation` becomes `act_layer`; the string 'None' or null keeps the model's own),
`custom_layer: {head_type: simple_dropout | mlp, drop, activation, hidden}` replaces the
classifier, and `fine_tuning: full | head | custom | scratch` (custom: the last
`unfreeze_stages` stages of timm's coarse parameter groups, plus the head, train)."""

from __future__ import annotations

from typing import Any

from torch import nn

from trainer.errors import ConfigError, close_matches
from trainer.parts.targets import call_target


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
        kwargs = {**_mapping(cfg.get("model_kwargs")), **timm_kwargs(cfg.get("timm"))}
        if _fixed_input_size(spec) and "image_size" in cfg:
            kwargs.setdefault("img_size", int(cfg["image_size"]))
        model = _create_timm(spec, pretrained, num_classes, kwargs)
    model.loaded_pretrained = pretrained and not isinstance(spec, dict)
    head_spec = cfg.get("custom_layer")
    if head_spec:
        replace_head(model, head_spec, num_classes)
    if mode in ("head", "custom"):
        if not hasattr(model, "get_classifier"):
            raise ConfigError(f"fine_tuning: '{mode}' needs a model with get_classifier() (timm)")
        model.requires_grad_(False)
        if mode == "custom":
            unfreeze_last_stages(model, int(cfg.get("unfreeze_stages", 1)))
        model.get_classifier().requires_grad_(True)
    return model


def _mapping(value: Any) -> dict[str, Any]:
    """A config mapping's items, each one read (so unused_keys sees them used)."""
    return dict(value.items()) if isinstance(value, dict) else {}


def _no_value(value: Any) -> bool:
    """null, or 'None' as the original YAML wrote it: the model's default."""
    return value is None or (isinstance(value, str) and value.strip().lower() in ("none", ""))


def activation_layer(name: Any, key: str) -> type[nn.Module]:
    """timm's activation class for a name such as GELU, ReLU, LeakyReLU, SiLU."""
    from timm.layers import get_act_layer

    try:
        layer = get_act_layer(str(name).lower())
    except (KeyError, ValueError, AssertionError):
        layer = None
    if layer is None:
        raise ConfigError(f"{key}: unknown activation {name!r} (expected e.g. ReLU, GELU, SiLU)")
    return layer


def timm_kwargs(block: Any) -> dict[str, Any]:
    """`timm:` as timm.create_model keyword arguments: activation -> act_layer; a 'None'
    value is left out (the model's default)."""
    out: dict[str, Any] = {}
    for key, value in _mapping(block).items():
        if _no_value(value):
            continue
        if key == "activation":
            out["act_layer"] = activation_layer(value, "timm.activation")
        else:
            out[key] = value
    return out


HEAD_TYPES = ("simple_dropout", "mlp")


def make_head(spec: dict[str, Any], in_features: int, num_classes: int) -> nn.Module:
    """simple_dropout: Dropout, Linear; mlp: Linear(hidden), activation, Dropout, Linear."""
    kind = str(spec.get("head_type") or "simple_dropout")
    drop = float(spec.get("drop") or 0.0)
    if kind == "simple_dropout":
        return nn.Sequential(nn.Dropout(drop), nn.Linear(in_features, num_classes))
    if kind == "mlp":
        hidden = int(spec.get("hidden") or 512)
        act = spec.get("activation")
        act_cls = nn.GELU if _no_value(act) else activation_layer(act, "custom_layer.activation")
        return nn.Sequential(
            nn.Linear(in_features, hidden),
            act_cls(),
            nn.Dropout(drop),
            nn.Linear(hidden, num_classes),
        )
    raise ConfigError(
        f"custom_layer.head_type: expected one of {', '.join(HEAD_TYPES)}, got {kind!r}"
    )


def replace_head(model: nn.Module, spec: dict[str, Any], num_classes: int) -> nn.Module:
    """Put the custom head where timm's classifier is (pretrained_cfg['classifier'])."""
    pcfg = getattr(model, "pretrained_cfg", None) or {}
    where = pcfg.get("classifier")
    in_features = getattr(model, "num_features", None)
    if not isinstance(where, str) or in_features is None:
        raise ConfigError("custom_layer: needs a timm model (its classifier's place is unknown)")
    *parents, last = where.split(".")
    owner = model
    for part in parents:
        owner = getattr(owner, part)
    head = make_head(spec, int(in_features), num_classes)
    setattr(owner, last, head)
    return head


def unfreeze_last_stages(model: nn.Module, n: int) -> None:
    """Train the last `n` stages (timm's coarse parameter groups, the stem and head apart)."""
    from timm.models import group_parameters

    if not hasattr(model, "group_matcher"):
        raise ConfigError("fine_tuning: 'custom' needs a timm model with group_matcher()")
    groups = group_parameters(model, model.group_matcher(coarse=True))
    head = {id(p) for p in model.get_classifier().parameters()}
    named = dict(model.named_parameters())
    stages = [
        names for _, names in sorted(groups.items())
        if not all(id(named[name]) in head for name in names if name in named)
    ][1:]  # the stem is not a stage
    for names in stages[len(stages) - n:] if n > 0 else []:
        for name in names:
            if name in named:
                named[name].requires_grad_(True)


ACTIVATIONS = ("ReLU", "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Swish",
               "Mish", "Tanh", "Sigmoid", "PReLU", "Hardswish", "HardSwish", "Hardsigmoid",
               "HardSigmoid", "GELUTanh", "QuickGELU")


def effective_model(model: nn.Module) -> dict[str, Any]:
    """The classifier's layers, the backbone's activation class and its dropout rates, read
    from the model."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    layers = (
        [type(m).__name__ for m in head.children()] or [type(head).__name__]
        if isinstance(head, nn.Module) else []
    )
    in_head = {id(m) for m in head.modules()} if isinstance(head, nn.Module) else set()
    acts = sorted({
        type(m).__name__ for m in model.modules()
        if id(m) not in in_head and type(m).__name__ in ACTIVATIONS
    })
    drop_path = [float(m.drop_prob) for m in model.modules() if hasattr(m, "drop_prob")]
    return {
        "head": layers,
        "activation": acts[0] if len(acts) == 1 else (acts or None),
        # the regularization category's keys: timm's classifier dropout and the deepest
        # block's stochastic depth (timm ramps it up to drop_path_rate)
        "drop_rate": float(getattr(model, "drop_rate", 0.0) or 0.0),
        "drop_path_rate": round(max(drop_path, default=0.0), 6),
    }


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
