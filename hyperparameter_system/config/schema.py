"""What the model's training script accepts, as it publishes it: the border facts' one owner.

A script publishes its schema as a JSON file beside it, `<script>.schema.json` (the built-in
engine writes it with `python codes/train.py --describe`; a test keeps it fresh). A shell
script that `exec`s a Python script inherits that script's schema. A model may also name one
with `schema: PATH`, or set `schema: null` for none. A script without a schema gets only the
base-config key checks: the runner never guesses what a third-party engine accepts.

The runner checks every option, override and base-config value against it before launching.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperparameter_system.core.errors import HpsysError, close_match

SUFFIX = ".schema.json"
# a script named on an `exec` line, or in a command array that is exec'ed (`CMD=(... x.py ...)`)
_EXEC_PY = re.compile(r"""^\s*(?:exec\s+|\w+=\().*?([\w./${}()"'-]+\.(?:py|sh))\b""", re.M)
_TYPE_WORDS = {"int": "an integer", "number": "a number", "bool": "true or false",
               "string": "a string", "mapping": "a mapping", "list": "a list", "null": "null"}


@dataclass(frozen=True)
class Schema:
    """The keys a script reads: each one's types, range and names (see codes/train.py
    --describe for the format)."""

    path: Path
    keys: Mapping[str, Mapping[str, Any]]
    numeric_strings: bool = True
    rules: tuple[Mapping[str, Any], ...] = ()  # cross-key rules (see rule_problem)

    def problem(self, key: str, value: Any) -> str | None:
        """None when the engine accepts `value` for `key` (or does not know the key), else
        what it expected, e.g. "expected a number > 0, got 0"."""
        spec = self.keys.get(key)
        if spec is None:
            return None
        return check(spec, value, self.numeric_strings)

    def known(self, key: str) -> bool:
        return key in self.keys

    def rule_problem(self, config: Mapping[str, Any]) -> str | None:
        """The message of the first published cross-key rule `config` breaks, else None.

        The engine's rule language (codes/trainer/schema.py RULES): a rule holds when an `if`
        term is false or unknown, or every `then` term is true or unknown; a term's value is
        its first set, non-null key (else its `default`), as the engine reads it, compared
        by `op` with `value` or with another term (`than`); not comparable is unknown."""
        for rule in self.rules:
            seen: dict[str, Any] = {}
            if not all(self._holds(config, term, seen) is True for term in rule["if"]):
                continue
            if any(self._holds(config, term, seen) is False for term in rule["then"]):
                return str(rule["message"]).format_map(_Seen(seen))
        return None

    def rule_keys(self) -> set[str]:
        """Every key a published rule reads (an override setting one is where a broken rule
        of the base config is told)."""
        terms = [t for r in self.rules for t in (*r["if"], *r["then"])]
        terms += [t["than"] for t in terms if "than" in t]
        return {key for t in terms for key in t["keys"]}

    def _holds(self, config: Mapping[str, Any], term: Mapping[str, Any],
               seen: dict[str, Any]) -> bool | None:
        left = self._term(config, term, seen)
        right = self._term(config, term["than"], seen) if "than" in term else term["value"]
        if not _comparable(left, right):
            return None
        return bool(_OPS[term["op"]](left, right))

    def _term(self, config: Mapping[str, Any], term: Mapping[str, Any],
              seen: dict[str, Any]) -> Any:
        value, key = term.get("default"), term["keys"][0]
        for candidate in term["keys"]:
            node: Any = config
            for part in candidate.split("."):
                node = node.get(part) if isinstance(node, Mapping) else None
            if node is not None:
                value, key = self.coerce(candidate, node), candidate
                break
        seen[term["name"]], seen[f"{term['name']}_key"] = value, key
        return value

    def coerce(self, key: str, value: Any) -> Any:
        """`value` as the engine reads it: a numeric string ('0.001') is a number where `key`
        takes numbers and no strings (list items too), so one value spelt two ways is one
        experiment id; anything else unchanged (and `is` the input)."""
        spec = self.keys.get(key)
        return _coerce(spec, value, self.numeric_strings) if spec is not None else value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_number(value: Any, numeric_strings: bool) -> float | int | None:
    """The value as a number when it is one (a numeric string too, as YAML 1.1 leaves '1e-3')."""
    if _is_number(value):
        return value
    if numeric_strings and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


class _Seen(dict):
    """A rule message's values; one it does not hold shows as `?`."""

    def __missing__(self, key: str) -> str:
        return "?"


_OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def _comparable(a: Any, b: Any) -> bool:
    """Both bools, or both numbers (a bool is no number here, as in the engine)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    return _is_number(a) and _is_number(b)


def _coerce(spec: Mapping[str, Any], value: Any, numeric_strings: bool) -> Any:
    types = spec.get("type") or []
    if isinstance(value, str) and "number" in types and "string" not in types:
        number = _as_number(value, numeric_strings)
        return float(number) if number is not None and math.isfinite(number) else value
    items = spec.get("items")
    if isinstance(value, list) and items:
        out = [_coerce(items, v, numeric_strings) for v in value]
        return out if any(a is not b for a, b in zip(out, value, strict=True)) else value
    return value


def _type_ok(types: Sequence[str], value: Any, numeric_strings: bool) -> bool:
    if value is None:
        return "null" in types
    if isinstance(value, bool):
        return "bool" in types
    if isinstance(value, int) and ("int" in types or "number" in types):
        return True
    if isinstance(value, float) and "number" in types:
        return math.isfinite(value)
    if isinstance(value, str):
        if "string" in types:
            return True
        if "number" in types:
            number = _as_number(value, numeric_strings)
            return number is not None and math.isfinite(number)
        return False
    if isinstance(value, Mapping):
        return "mapping" in types
    if isinstance(value, list | tuple):
        return "list" in types
    return False


def _num(x: float) -> str:
    """A bound as written: 4294967295, not 4.29497e+09; 0.001 and 1e-09 as %g writes them."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def _range_words(spec: Mapping[str, Any]) -> str:
    low, high = spec.get("low"), spec.get("high")
    if low is not None and high is not None:
        left = "(" if spec.get("low_open") else "["
        right = ")" if spec.get("high_open") else "]"
        return f" in {left}{_num(low)}, {_num(high)}{right}"
    if low is not None:
        return f" {'>' if spec.get('low_open') else '>='} {_num(low)}"
    if high is not None:
        return f" {'<' if spec.get('high_open') else '<='} {_num(high)}"
    return ""


def _in_range(spec: Mapping[str, Any], number: float) -> bool:
    low, high = spec.get("low"), spec.get("high")
    if low is not None and (number <= low if spec.get("low_open") else number < low):
        return False
    return high is None or (number < high if spec.get("high_open") else number <= high)


def check(spec: Mapping[str, Any], value: Any, numeric_strings: bool = True) -> str | None:
    """None when `value` fits `spec`, else what was expected and what was given."""
    types = spec.get("type") or []
    if types and not _type_ok(types, value, numeric_strings):
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in types if t != "int" or
                            "number" not in types)
        return f"expected {words}{_range_words(spec)}, got {value!r}"
    number = None if isinstance(value, str) and "string" in types else (
        _as_number(value, numeric_strings))
    if number is not None and not _in_range(spec, number):
        noun = "an integer" if types == ["int"] or types == ["int", "null"] else "a number"
        return f"expected {noun}{_range_words(spec)}, got {value!r}"
    choices = spec.get("choices")
    if choices and isinstance(value, str):
        fold = str.lower if spec.get("ignore_case") else str
        if fold(value) not in {fold(c) for c in choices}:
            hint = close_match(value, choices, fold)
            shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
            return f"unknown name {value!r}{hint}; expected one of {shown}"
    if isinstance(value, list | tuple):
        lengths = spec.get("lengths")
        if lengths and len(value) not in lengths:
            return f"expected a list of {' or '.join(map(str, lengths))} values, got {value!r}"
        items = spec.get("items")
        if items:
            for item in value:
                inner = check(items, item, numeric_strings)
                if inner is not None:
                    return f"{inner} (in {value!r})"
    return None


def load_schema(path: Path) -> Schema:
    """A schema file; a broken one is one line naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        keys = data["keys"]
        if not isinstance(keys, Mapping):
            raise TypeError("'keys' is not a mapping")
        rules = tuple(_checked_rule(r) for r in data.get("rules") or ())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HpsysError(str(path), f"cannot read the script's schema: {exc}") from None
    return Schema(path, keys, bool(data.get("numeric_strings", True)), rules)


def _checked_rule(rule: Any) -> Mapping[str, Any]:
    """A published rule as rule_problem reads it; a malformed one is the schema's error."""
    def term(t: Any) -> None:
        if not (isinstance(t, Mapping) and isinstance(t.get("name"), str)
                and isinstance(t.get("keys"), list) and t["keys"]
                and all(isinstance(k, str) for k in t["keys"])):
            raise TypeError(f"a rule term needs a name and keys, got {t!r}")
        if "op" in t and (t["op"] not in _OPS or ("value" not in t and "than" not in t)):
            raise TypeError(f"a rule term needs an op of {', '.join(_OPS)} and a value or "
                            f"than, got {t!r}")
        if "than" in t:
            term(t["than"])

    if not (isinstance(rule, Mapping) and isinstance(rule.get("message"), str)
            and isinstance(rule.get("if"), list) and isinstance(rule.get("then"), list)):
        raise TypeError(f"a rule needs if, then and message, got {rule!r}")
    for t in (*rule["if"], *rule["then"]):
        if "op" not in t:
            raise TypeError(f"a rule's if/then term needs an op, got {t!r}")
        term(t)
    return rule


def schema_path(argv: Sequence[str], root: Path, depth: int = 3) -> Path | None:
    """The schema a model's command publishes: its Python (or shell) script's sidecar; a shell
    script without one inherits the one of the script it `exec`s."""
    for arg in argv:
        if not arg.endswith((".py", ".sh")):
            continue
        script = Path(arg) if Path(arg).is_absolute() else root / arg
        sidecar = script.with_suffix(SUFFIX)
        if sidecar.is_file():
            return sidecar
        if arg.endswith(".sh") and depth > 0 and script.is_file():
            return _exec_target(script, root, depth - 1)
        return None
    return None


def _exec_target(script: Path, root: Path, depth: int) -> Path | None:
    """The sidecar of the script a shell script `exec`s last (`exec "$PY" codes/train.py ...`,
    or `CMD=("$PY" codes/train.py ...)` then `exec "${CMD[@]}"`), looked up beside the shell
    script and under the root."""
    try:
        found = _EXEC_PY.findall(script.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    if not found:
        return None
    # the path after any $(...)/${...} prefix: `"$(dirname "$0")/fake.py"` -> fake.py
    target = re.split(r"""[)}"'\s]""", found[-1])[-1].lstrip("/")
    for base in (script.parent, root):
        if (base / target).is_file():
            return schema_path([str(base / target)], root, depth)
    return None
