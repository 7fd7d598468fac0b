"""The keys codes/train.py reads: accepted types, ranges and names, as data.

One owner for these facts: config.py validates with `check`, `python codes/train.py --describe`
publishes `describe()` as JSON (and codes/train.schema.json is that output), and the runner
checks options against it before launch. Torch-free, so describing and validating stay instant.

A spec is a JSON-ready dict: `type` (a list of int, number, bool, string, mapping, list, null;
"number" is int or float, never bool, finite only), optionally `low`/`low_open`,
`high`/`high_open` (numbers only), `choices` with `ignore_case`, and for lists `items` (the
spec of each element) and `lengths`. A key not listed is accepted as it is (a user's +key).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from trainer.registry import loss_names, optimizer_names, scheduler_names
from trainer.schema_names import SCHEDULER_PARAMS

# The names the data side builds (torch-free copies, kept equal by tests/codes/test_v2_data.py).
AUG_POLICIES = (
    *("eda", "dilation", "erosion", "easiest", "stilleasy", "basic", "middle", "aggressive"),
)
TTA_VIEWS = (
    *("identity", "hflip", "vflip", "transpose", "rot90", "rot180", "rot270", "rot5", "rot-5"),
)

SCHEMA_VERSION = 2  # 2: cross-key `rules`
Spec = dict[str, Any]

INT, NUMBER, BOOL, STRING, MAPPING, LIST, NULL = (
    "int",
    "number",
    "bool",
    "string",
    "mapping",
    "list",
    "null",
)


@dataclass(frozen=True)
class Range:
    """Where a number may lie: from `low` to `high` (None: that end is unbounded), each end
    closed unless it is open."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def fields(self) -> Spec:
        """The spec fields of the ends that are bounded (`low`/`low_open`, `high`/`high_open`)."""
        out: Spec = {}
        if self.low is not None:
            out.update(low=self.low, low_open=self.low_open)
        if self.high is not None:
            out.update(high=self.high, high_open=self.high_open)
        return out


def spec(
    *types: str,
    within: Range | None = None,
    choices: tuple[str, ...] | None = None,
    ignore_case: bool = False,
    items: Spec | None = None,
    lengths: tuple[int, ...] | None = None,
) -> Spec:
    """A spec with only the fields that say something (numbers: `within` their range)."""
    out: Spec = {"type": list(types)}
    if within is not None:
        out.update(within.fields())
    if choices is not None:
        out.update(choices=list(choices), ignore_case=ignore_case)
    if items is not None:
        out["items"] = items
    if lengths is not None:
        out["lengths"] = list(lengths)
    return out


POSITIVE = Range(low=1)
NON_NEGATIVE = Range(low=0)
ABOVE_ZERO = Range(low=0, low_open=True)
UNIT = Range(low=0, high=1)  # [0, 1]
FRACTION = Range(low=0, high=1, high_open=True)  # [0, 1)
OPEN_UNIT = Range(low=0, high=1, low_open=True, high_open=True)  # (0, 1)
# Per-channel lists: images are always decoded to RGB; one value serves all three channels.
CHANNELS = {"lengths": (1, 3)}

# Values outside these ranges make no sense and would fail late, or silently do something else
# (label_smooth 1.5 flips the target, patience -1 stops after every epoch).
KEYS: dict[str, Spec] = {
    "model_name": spec(STRING, MAPPING),
    "pretrained": spec(BOOL),
    "fine_tuning": spec(STRING, choices=("full", "head", "custom", "scratch")),
    "unfreeze_stages": spec(INT, within=NON_NEGATIVE),  # fine_tuning: custom trains the last N
    "timm": spec(MAPPING, NULL),  # any timm.create_model keyword argument, plus:
    "timm.activation": spec(STRING, NULL),  # act_layer; 'None' or null: the model's own
    "timm.drop_rate": spec(NUMBER, NULL, within=FRACTION),
    "timm.drop_path_rate": spec(NUMBER, NULL, within=FRACTION),
    "custom_layer": spec(MAPPING, NULL),  # null: the model's own classifier
    "custom_layer.head_type": spec(STRING, choices=("simple_dropout", "mlp")),
    "custom_layer.drop": spec(NUMBER, within=FRACTION),
    "custom_layer.activation": spec(STRING, NULL),
    "custom_layer.hidden": spec(INT, within=POSITIVE),
    "two_stage": spec(BOOL),  # true: train.py --config2 CONFIG trains a second stage
    "num_classes": spec(INT, NULL),
    "model_kwargs": spec(MAPPING, NULL),
    "criterion": spec(STRING, MAPPING, choices=loss_names(), ignore_case=True),
    "label_smooth": spec(NUMBER, within=FRACTION),
    "focal_alpha": spec(NUMBER, NULL, within=NON_NEGATIVE),
    "focal_gamma": spec(NUMBER, within=NON_NEGATIVE),
    "class_weighting": spec(
        STRING, LIST, BOOL, NULL, choices=("none", "balanced"), ignore_case=True, items=spec(NUMBER)
    ),
    "optimizer_name": spec(STRING, MAPPING, choices=optimizer_names(), ignore_case=True),
    "optimizer_params": spec(MAPPING, NULL),
    "lr": spec(NUMBER, within=ABOVE_ZERO),
    "weight_decay": spec(NUMBER, within=NON_NEGATIVE),
    "momentum": spec(NUMBER, within=UNIT),
    "scheduler_name": spec(STRING, MAPPING, NULL, choices=scheduler_names(), ignore_case=True),
    "scheduler_params": spec(MAPPING, NULL),
    "scheduler_params.T_max": spec(INT, NULL, within=POSITIVE),
    "scheduler_params.eta_min": spec(NUMBER, within=NON_NEGATIVE),
    "scheduler_params.max_lr": spec(NUMBER, NULL, within=ABOVE_ZERO),
    "scheduler_params.total_steps": spec(INT, NULL, within=POSITIVE),
    "scheduler_params.step_size": spec(INT, within=POSITIVE),
    "scheduler_params.gamma": spec(NUMBER, within=ABOVE_ZERO),
    "scheduler_params.factor": spec(NUMBER, within=OPEN_UNIT),
    "scheduler_params.patience": spec(INT, within=NON_NEGATIVE),
    "scheduler_params.pct_start": spec(NUMBER, within=UNIT),
    "scheduler_params.warmup_epochs": spec(INT, NULL, within=NON_NEGATIVE),
    "warmup_epochs": spec(INT, within=NON_NEGATIVE),
    "image_size": spec(INT, within=POSITIVE),
    "batch_size": spec(INT, within=POSITIVE),
    "mixed_precision": spec(BOOL),
    "epochs": spec(INT, within=POSITIVE),
    "patience": spec(INT, NULL, within=NON_NEGATIVE),
    "monitor": spec(STRING, choices=("val_f1", "val_acc", "val_loss")),
    "val_split_ratio": spec(NUMBER),  # (0, 1) unless n_folds >= 2: checked in config.py
    "n_folds": spec(INT, NULL),
    "stratify": spec(BOOL),
    "random_seed": spec(INT, within=Range(low=0, high=2**32 - 1)),  # numpy/scikit-learn seeds
    "data_dir": spec(STRING),
    "train_data": spec(STRING),
    "limit_samples": spec(INT, NULL, within=POSITIVE),  # null: all the data
    "num_workers": spec(INT, within=NON_NEGATIVE),
    "cpu_threads": spec(INT, NULL),
    "device": spec(STRING),  # auto, cpu, cuda or cuda:N of the visible ones: device.py
    "norm_mean": spec(LIST, items=spec(NUMBER), **CHANNELS),
    "norm_std": spec(LIST, items=spec(NUMBER, within=ABOVE_ZERO), **CHANNELS),
    "augment": spec(MAPPING, BOOL, NULL),
    "augment.enabled": spec(BOOL),
    "augment.hflip": spec(NUMBER),
    "augment.vflip": spec(NUMBER),
    "augment.rotate_degrees": spec(NUMBER),
    "augment.translate": spec(NUMBER),
    # V2 data side: albumentations policies (data/augment.py), mixup/cutmix (data/mixing.py),
    # samplers and oversampling (data/sampling.py), TTA (tta.py).
    "online_augmentation": spec(BOOL),
    "augmentation": spec(MAPPING, NULL),
    **{f"augmentation.{name}": spec(BOOL) for name in AUG_POLICIES + ("mixup", "cutmix")},
    "dynamic_augmentation": spec(MAPPING, BOOL, NULL),
    "dynamic_augmentation.enabled": spec(BOOL),
    "dynamic_augmentation.policies": spec(MAPPING, NULL),  # {STAGE: {end_epoch, augs}}
    "mixup_alpha": spec(NUMBER, within=NON_NEGATIVE),
    "cutmix_alpha": spec(NUMBER, within=NON_NEGATIVE),
    "mix_prob": spec(NUMBER, within=UNIT),
    "switch_prob": spec(NUMBER, within=UNIT),
    "val_TTA": spec(BOOL),
    "test_TTA": spec(BOOL),
    "TTA": spec(BOOL),
    "tta_views": spec(LIST, NULL, items=spec(STRING, choices=TTA_VIEWS)),
    "tta_dropout": spec(BOOL),
    "weighted_random_sampler": spec(BOOL),
    "class_imbalance": spec(MAPPING, BOOL, NULL),
    "class_imbalance.aug_class": spec(LIST, NULL, items=spec(INT, within=NON_NEGATIVE)),
    "class_imbalance.max_samples": spec(INT, within=POSITIVE),
    "wandb": spec(MAPPING, NULL),
    "wandb.project": spec(STRING, NULL),
    "wandb.entity": spec(STRING, NULL),
    "wandb.group": spec(STRING, NULL),
    "wandb.tags": spec(LIST, STRING, NULL),
    "wandb.id": spec(STRING, NULL),
    "wandb.job_type": spec(STRING, NULL),
    "wandb.mode": spec(STRING, choices=("online", "offline", "disabled")),
    "wandb.log": spec(BOOL),
    "wandb.init_timeout": spec(NUMBER),
    "output_dir": spec(STRING),
    "run_name": spec(STRING, NULL),
}


# A scheduler's other constructor parameters: any value, the scheduler itself checks it.
for _param in SCHEDULER_PARAMS:
    KEYS.setdefault(f"scheduler_params.{_param}", spec(INT, NUMBER, BOOL, STRING, LIST, NULL))


# Cross-key rules, as data: the engine checks them (`rule_problem`, from `validate`) and
# publishes them, so the runner refuses exactly these configs before launch. A rule holds
# when one of its `if` terms is false or unknown, or every `then` term is true or unknown.
# A term: `keys` (the first that is set and not null gives the value, else `default`), `op`
# (< <= > >= == !=) and `value` or `than` (another term). A value that is missing, null, or
# not comparable with the other side makes the term unknown: the key checks say the rest.
# `message` is formatted with each term's value by its `name` and `<name>_key` (the key that
# gave it).
WARMUP = {"name": "warmup", "keys": ["scheduler_params.warmup_epochs", "warmup_epochs"],
          "default": 0}
EPOCHS = {"name": "epochs", "keys": ["epochs"]}
RATIO = {"name": "ratio", "keys": ["val_split_ratio"], "default": 0.2}
RULES: list[Spec] = [
    {"name": "val_split_ratio",
     "if": [{"name": "folds", "keys": ["n_folds"], "default": 0, "op": "<", "value": 2}],
     "then": [{**RATIO, "op": ">", "value": 0}, {**RATIO, "op": "<", "value": 1}],
     "message": "'val_split_ratio' expected a number in (0, 1) unless n_folds >= 2, got {ratio}"},
    {"name": "warmup_shorter_than_run",
     "if": [{**WARMUP, "op": ">", "value": 0}],
     "then": [{**WARMUP, "op": "<", "than": EPOCHS}],
     "message": "{warmup_key}: expected fewer than epochs ({epochs}), got {warmup}"},
    {"name": "dynamic_augmentation_is_online",
     "if": [{"name": "online", "keys": ["online_augmentation"], "op": "==", "value": False}],
     "then": [{"name": "dynamic", "keys": ["dynamic_augmentation.enabled"], "default": False,
               "op": "!=", "value": True}],
     "message": "online_augmentation: false, but dynamic_augmentation.enabled is true (its "
                "stages are applied online); expected online_augmentation: true, or dynamic off"},
]
class _Seen(dict):
    """A rule message's values; one it does not hold shows as `?`."""

    def __missing__(self, key: str) -> str:
        return "?"


_OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def _term_value(cfg: dict[str, Any], term: Spec) -> tuple[Any, str]:
    """The term's value and the key that gave it (its first key when the default did)."""
    for key in term["keys"]:
        node: Any = cfg
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            return node, key
    return term.get("default"), term["keys"][0]


def _comparable(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    return isinstance(a, int | float) and isinstance(b, int | float)


def _holds(cfg: dict[str, Any], term: Spec, seen: dict[str, Any]) -> bool | None:
    """True or False, or None when unknown."""
    left, key = _term_value(cfg, term)
    seen[term["name"]], seen[f"{term['name']}_key"] = left, key
    if "than" in term:
        right, other = _term_value(cfg, term["than"])
        seen[term["than"]["name"]], seen[f"{term['than']['name']}_key"] = right, other
    else:
        right = term["value"]
    if not _comparable(left, right):
        return None
    return bool(_OPS[term["op"]](left, right))


def rule_problem(cfg: dict[str, Any]) -> str | None:
    """The message of the first rule `cfg` breaks, else None."""
    for rule in RULES:
        seen: dict[str, Any] = {}
        if not all(_holds(cfg, term, seen) is True for term in rule["if"]):
            continue
        if any(_holds(cfg, term, seen) is False for term in rule["then"]):
            return str(rule["message"]).format_map(_Seen(seen))
    return None


def describe() -> dict[str, Any]:
    """The schema as published by `codes/train.py --describe` (format version 2)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "engine": "codes/train.py",
        "open": True,
        "numeric_strings": True,
        "keys": KEYS,
        "rules": RULES,
    }


def dumps() -> str:
    """The published text: indent 1, sorted keys (codes/train.schema.json holds exactly this)."""
    return json.dumps(describe(), indent=1, sort_keys=True)


# ---------------------------------------------------------------- checking

_KINDS = (
    (bool, BOOL),  # before int: a bool is an int to Python, never to the schema
    (int, INT),
    (float, NUMBER),
    (str, STRING),
    (dict, MAPPING),
    (list, LIST),
    (type(None), NULL),
)
_WORDS = {
    INT: "an integer",
    NUMBER: "a number",
    BOOL: "true/false",
    STRING: "a string",
    MAPPING: "a mapping",
    NULL: "null",
}


def _kind(value: Any) -> str | None:
    return next((name for cls, name in _KINDS if isinstance(value, cls)), None)


def _numeric_strings(s: Spec) -> bool:
    """A string stands for a number where the key takes numbers and no strings."""
    return NUMBER in s["type"] and STRING not in s["type"]


def coerce(s: Spec, value: Any) -> Any:
    """`value` with numeric strings ('1e-3', YAML 1.1's quirk) made floats where `s` takes
    numbers, list elements included; anything else unchanged (and `is` the input)."""
    if isinstance(value, str) and _numeric_strings(s):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    items = s.get("items")
    if isinstance(value, list) and items is not None:
        out = [coerce(items, v) for v in value]
        return out if any(a is not b for a, b in zip(out, value, strict=True)) else value
    return value


def check(s: Spec, value: Any) -> str | None:
    """None when `value` is accepted by spec `s`, else what was expected ('a number in [0, 1)')."""
    value = coerce(s, value)
    kind = _kind(value)
    if kind == INT and INT not in s["type"] and NUMBER in s["type"]:
        kind = NUMBER
    if kind not in s["type"]:
        return expected_type(s)
    if kind in (INT, NUMBER):
        if not (isinstance(value, int) or math.isfinite(value)) or not _in_bounds(s, value):
            return _bounds(s) or "a finite number"
    elif kind == STRING and "choices" in s and not _chosen(s, value):
        return f"one of {', '.join(s['choices'])}"
    elif kind == LIST:
        items = s.get("items")
        if ("lengths" in s and len(value) not in s["lengths"]) or (
            items is not None and any(check(items, v) is not None for v in value)
        ):
            return _list_words(s)
    return None


def _in_bounds(s: Spec, value: float) -> bool:
    if "low" in s and (value <= s["low"] if s["low_open"] else value < s["low"]):
        return False
    return "high" not in s or (value < s["high"] if s["high_open"] else value <= s["high"])


def _chosen(s: Spec, value: str) -> bool:
    if s.get("ignore_case"):
        return value.lower() in (c.lower() for c in s["choices"])
    return value in s["choices"]


def expected_type(s: Spec) -> str:
    """'an integer or null', 'a string or a mapping', '1 or 3 numbers > 0'."""
    types = [t for t in s["type"] if not (t == INT and NUMBER in s["type"])]
    words = [_list_words(s) if t == LIST else _WORDS[t] for t in types]
    return " or ".join(dict.fromkeys(words))


def _num(x: float) -> str:
    """A bound as written: 4294967295, not 4.29497e+09; 0.001 and 1e-09 as %g writes them."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def _bounds(s: Spec) -> str | None:
    """'a positive integer', 'a number > 0', 'a number in [0, 1)'; None without bounds."""
    noun = "an integer" if INT in s["type"] and NUMBER not in s["type"] else "a number"
    low, high = s.get("low"), s.get("high")
    if low is None and high is None:
        return None
    if noun == "an integer" and low == 1 and not s["low_open"] and high is None:
        return "a positive integer"
    if low is not None and high is not None:
        left, right = "(" if s["low_open"] else "[", ")" if s["high_open"] else "]"
        return f"{noun} in {left}{_num(low)}, {_num(high)}{right}"
    if low is not None:
        return f"{noun} {'>' if s['low_open'] else '>='} {_num(low)}"
    return f"{noun} {'<' if s['high_open'] else '<='} {_num(high)}"


def _list_words(s: Spec) -> str:
    """'1 or 3 numbers > 0', 'a list of numbers', 'a list'."""
    items = s.get("items")
    what = None
    if items is not None:
        single = _bounds(items) or expected_type(items)
        what = re.sub(r"\b(number|integer|string|mapping)\b", r"\1s", single, count=1)
        what = re.sub(r"^an? ", "", what)
    if "lengths" in s:
        return f"{' or '.join(str(n) for n in s['lengths'])} {what or 'values'}"
    return f"a list of {what}" if what else "a list"
