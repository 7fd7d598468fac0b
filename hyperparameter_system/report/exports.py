"""`--export csv|md|html PATH` and `--plots DIR`: the summary's tables outside the terminal.

csv is one tidy file (a `table` column names the table each row belongs to); md is headings and
pipe tables; html is ONE self-contained file (inline CSS, plots as base64 PNG), so it can be
mailed or opened offline.

Every cell is neutralised for where it goes (a description or a log line is anyone's text):
csv cells a spreadsheet would run as a formula get a leading quote (OWASP's rule; a plain
number such as -0.0709 stays a number), markdown cells are HTML-escaped and their pipes
escaped, html cells are escaped.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import re
from pathlib import Path

from hyperparameter_system.core.atomic import atomic_write_text
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.report.jsonexport import to_json
from hyperparameter_system.report.plots import render_all
from hyperparameter_system.report.summary import Summary
from hyperparameter_system.report.tables import ReportTable, tables

FORMATS = ("csv", "md", "html", "json")


def export(summary: Summary, fmt: str, path: Path) -> Path:
    """Write the summary in `fmt` to `path`."""
    writers = {"csv": to_csv, "md": to_markdown, "html": to_html, "json": to_json}
    if fmt not in writers:
        raise HpsysError(f"--export {fmt}", f"unknown format; expected one of {', '.join(FORMATS)}")
    atomic_write_text(path, writers[fmt](summary))
    return path


def write_plots(summary: Summary, folder: Path) -> list[Path]:
    """Every plot as its own PNG file."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, png in render_all(summary).items():
        (folder / name).write_bytes(png)
        written.append(folder / name)
    return written


def _intro(summary: Summary) -> list[str]:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.counts.items())) or "no runs"
    lines = [f"Headline metric: {summary.metric} ({summary.metric_mode}); runs: {counts}."]
    if summary.repeats > 1:
        lines.append(f"Each option ran {summary.repeats} times; 'n.s.' marks a delta within "
                     "two combined standard errors of the baseline (not significant).")
    return lines


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def csv_cell(text: str) -> str:
    """A cell a spreadsheet shows as text: one starting like a formula gets a leading quote,
    unless it is a plain number (a signed delta) or the bare "-" of a missing value."""
    if text.startswith(FORMULA_START) and text != "-" and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def to_csv(summary: Summary) -> str:
    """All tables in one CSV: table, title, model, category, then the union of the columns."""
    all_tables = tables(summary)
    keys = ("model", "category")
    columns = [c for c in dict.fromkeys(h for t in all_tables for h in t.headers) if c not in keys]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([csv_cell(c) for c in ("table", "title", *keys, *columns)])
    for t in all_tables:
        for row in t.rows:
            cells = dict(zip(t.headers, row, strict=True))
            writer.writerow([csv_cell(c) for c in (
                t.key, t.title, t.model or cells.get("model", ""),
                t.category or cells.get("category", ""), *(cells.get(c, "") for c in columns))])
    return buf.getvalue()


def md_text(text: str) -> str:
    """Markdown text that renders as written: HTML escaped (no tag gets through), pipes escaped
    (they would split a table cell), newlines as spaces (they would end a table row)."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def to_markdown(summary: Summary) -> str:
    lines = ["# Experiment report", "", *(md_text(line) for line in _intro(summary)), ""]
    for t in tables(summary):
        lines += [f"## {md_text(t.title)}", "",
                  "| " + " | ".join(md_text(h) for h in t.headers) + " |",
                  "|" + "---|" * len(t.headers)]
        for row, (winner, _) in zip(t.rows, t.tones, strict=True):
            cells = [md_text(c) for c in row]
            if winner:
                cells = [f"**{c}**" if c else c for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
        if t.note:
            lines += ["", f"Note: {md_text(t.note)}"]
        lines.append("")
    return "\n".join(lines)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
table { border-collapse: collapse; margin: 8px 0 20px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f0f0f0; }
tr.winner td { font-weight: bold; background: #fff8dc; }
td.better { color: #0a7a0a; } td.worse { color: #b00020; }
p.note { margin: -12px 0 20px; font-style: italic; color: #555; }
img { max-width: 100%; border: 1px solid #ddd; margin: 6px 0; }
"""


def _html_table(t: ReportTable) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.headers)
    body = []
    for row, (winner, better) in zip(t.rows, t.tones, strict=True):
        tone = {True: "better", False: "worse"}.get(better, "")
        cells = "".join(
            (f'<td class="{tone}">' if tone and t.toned(h) else "<td>")
            + html.escape(c) + "</td>" for h, c in zip(t.headers, row, strict=True))
        body.append(f'<tr class="{"winner" if winner else ""}">{cells}</tr>')
    note = f'\n<p class="note">{html.escape(t.note)}</p>' if t.note else ""
    return (f"<h3>{html.escape(t.title)}</h3>\n<table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>{note}")


def to_html(summary: Summary) -> str:
    parts = [f"<p>{html.escape(line)}</p>" for line in _intro(summary)]
    parts += [_html_table(t) for t in tables(summary)]
    plots = render_all(summary)
    if plots:
        parts.append("<h2>Plots</h2>")
    for name, png in plots.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<figure><img alt="{html.escape(name)}" '
                     f'src="data:image/png;base64,{data}"><figcaption>{html.escape(name)}'
                     "</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>Experiment report</title><style>{STYLE}</style></head><body>"
            "<h1>Experiment report</h1>\n" + "\n".join(parts) + "\n</body></html>\n")
