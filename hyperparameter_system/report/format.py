"""How numbers read in every view (terminal, csv, markdown, html): one place, so they agree.

Metrics and deltas print with four decimals; where four decimals would say nothing (a nonzero
magnitude under 5e-5 would read 0.0000; a delta under 1e-12 is float noise and does) or run long
(a million and more: 1e308 would be 309 digits) they fall back to four significant digits.
NaN reads "nan", infinity "inf".
"""

from __future__ import annotations

import math

FIXED_MAX = 1e6  # from here on, `.4g`
FIXED_MIN = 5e-5  # below this (and above float noise), `.4g`
NOISE = 1e-12  # a smaller delta is float noise (the mean of +0.05 and -0.05): +0.0000


def _number(value: float, sign: str, noise: float = 0.0) -> str:
    if math.isnan(value):
        return "nan"
    size = abs(value)
    if math.isinf(value) or size >= FIXED_MAX or 0 < size < FIXED_MIN and size >= noise:
        return f"{value:{sign}.4g}"
    return f"{value:{sign}.4f}"


def fmt_metric(value: float | None) -> str:
    return "-" if value is None else _number(value, "")


def fmt_delta(value: float | None) -> str:
    return "-" if value is None else _number(value, "+", NOISE)


def fmt_interval(half_width: float | None) -> str:
    """` ± 0.0043` after a delta: its interval at the race's confidence ("" when unknown)."""
    return "" if half_width is None else f" ± {_number(half_width, '')}"


def fmt_significant(significant: bool | None) -> str:
    return {True: "yes", False: "n.s."}.get(significant, "")


def fmt_number(value: float | None) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value) or abs(value) >= FIXED_MAX:
        return f"{value:.4g}"
    return f"{value:g}" if float(value).is_integer() else f"{value:.1f}"
