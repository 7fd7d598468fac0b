"""How numbers read in every view (terminal, csv, markdown, html): one place, so they agree."""

from __future__ import annotations


def fmt_metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def fmt_delta(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


def fmt_significant(significant: bool | None) -> str:
    return {True: "yes", False: "n.s."}.get(significant, "")


def fmt_number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if float(value).is_integer() else f"{value:.1f}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")
