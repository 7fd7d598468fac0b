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
from collections.abc import Sequence
from pathlib import Path

from hyperparameter_system.core.atomic import atomic_write_bytes, atomic_write_text
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.core.states import Direction
from hyperparameter_system.core.writable import file_target, output_folder
from hyperparameter_system.report.format import fmt_delta, fmt_interval, fmt_metric
from hyperparameter_system.report.jsonexport import to_json
from hyperparameter_system.report.plots import Figure, figures, render_all
from hyperparameter_system.report.summary import Summary
from hyperparameter_system.report.tables import ReportTable, tables

FORMATS = ("csv", "md", "html", "json")


def render(summary: Summary, fmt: str, extra: Sequence[Figure] = ()) -> str:
    """The summary as `fmt` text (the html with `extra` figures: the studies')."""
    writers = {"csv": to_csv, "md": to_markdown, "html": lambda s: to_html(s, extra),
               "json": to_json}
    if fmt not in writers:
        raise HpsysError(f"--export {fmt}", f"unknown format; expected one of {', '.join(FORMATS)}")
    return writers[fmt](summary)


def export(summary: Summary, fmt: str, path: Path, extra: Sequence[Figure] = ()) -> Path:
    """Write the summary in `fmt` to `path`, through a symlink to its target (see
    core/writable.output_file: anything but a regular file is refused)."""
    text = render(summary, fmt, extra)
    atomic_write_text(file_target(f"--export {fmt} {path}", path), text)
    return path


def write_plots(summary: Summary, folder: Path) -> list[Path]:
    """Every plot as its own PNG file; a name taken by a FIFO or a device is refused, a
    symlink written through."""
    where = f"--plots {folder}"
    real = output_folder(where, folder)
    written = []
    for name, png in render_all(summary).items():
        atomic_write_bytes(file_target(f"{where}: {name}", real / name), png)
        written.append(folder / name)
    return written


def _intro(summary: Summary) -> list[str]:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.counts.items())) or "no runs"
    lines = [f"Headline metric: {summary.metric} ({summary.metric_mode}); runs: {counts}."]
    lines.append(summary.method)
    return lines


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUM = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_PLAIN_NUMBER = re.compile(f"{_NUM}(?: ± {_NUM})?")  # a delta, maybe with its interval


def csv_cell(text: str) -> str:
    """A cell a spreadsheet shows as text: one starting like a formula gets a leading quote,
    unless it is a plain number (a signed delta, maybe `± width`) or the bare "-" of a missing
    value."""
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
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1320px; padding: 0 16px;
       color: #222; background: #fff; font-size: 15px; line-height: 1.4; }
h2 { margin-top: 36px; border-bottom: 2px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0 20px; font-size: 14px; width: 100%;
        table-layout: auto; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; word-break: break-word; }
th { background: #f0f0f0; }
td.pre { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 12px; }
td code { white-space: normal; overflow-wrap: anywhere; }
.chip code { white-space: normal; overflow-wrap: normal; word-break: normal; }
.desc { color: #555; font-size: 13px; }
tr.winner td { font-weight: bold; background: #fff8dc; }
td.better { color: #0a7a0a; } td.worse { color: #b00020; }
p.note { margin: -12px 0 20px; font-style: italic; color: #555; }
figure { margin: 12px 0 28px; }
figcaption { color: #333; font-size: 14px; margin-top: 4px; max-width: 1100px; }
figcaption b { display: block; font-size: 16px; margin-bottom: 2px; }
img { max-width: 100%; border: 1px solid #ddd; }
table.heatmap td, table.heatmap th { padding: 6px; }
table.heatmap th.model { width: 130px; overflow-wrap: normal; word-break: normal; }
.chip { display: block; margin: 3px 0; padding: 4px 6px; border-radius: 4px;
        border: 1px solid rgba(0,0,0,.12); font-size: 13px; }
.chip.winner { border: 2px solid #111; font-weight: bold; }
.chip .value { display: block; text-align: right; font-variant-numeric: tabular-nums; }
.winner-mark { color: #b8860b; font-size: 16px; }
.legend span { display: inline-block; padding: 2px 8px; margin-right: 6px; border-radius: 4px;
               border: 1px solid rgba(0,0,0,.12); }
"""

STAR = "\u2605"


def heat_colour(better: bool | None, strength: float) -> str:
    """The background of a delta: green when better, red when worse, white when level; the
    stronger the larger |delta| is against the largest one on the page."""
    if better is None:
        return "#f4f4f4"
    level = 0.18 + 0.62 * min(1.0, max(0.0, strength))
    r, g, b = (46, 158, 91) if better else (208, 69, 63)
    mix = [round(255 + (c - 255) * level) for c in (r, g, b)]
    return "#{:02x}{:02x}{:02x}".format(*mix)


def breakable(name: str, dots: bool = False) -> str:
    """A name that wraps only after its underscores (and dots, for a model name; never in a
    number such as lr0.003) in a narrow cell, never mid-word."""
    def part(text: str) -> str:
        return ".<wbr>".join(map(html.escape, text.split("."))) if dots else html.escape(text)

    return "_<wbr>".join(part(p) for p in name.split("_"))


def _chip(summary: Summary, stat, scale: float) -> str:
    name = f"<code>{breakable(stat.run_name)}</code>"
    if stat.description:
        name += f' <span class="desc">{html.escape(stat.description)}</span>'
    if stat.delta is None or stat.delta != stat.delta:
        value, colour = html.escape(stat.status if stat.rows else "not run"), "#f4f4f4"
    else:
        value = fmt_delta(stat.delta) + fmt_interval(stat.half_width)
        colour = heat_colour(summary.better(stat.delta), abs(stat.delta) / scale)
    if stat.seeds and stat.verdict:
        value += f" &middot; {html.escape(stat.verdict)}"
    mark = ""
    if stat.winner:
        mark = f'<span class="winner-mark" title="winner">{STAR}</span> '
    if stat.pruned:
        value += f" &middot; pruned @{stat.pruned_at if stat.pruned_at is not None else '?'}"
    cls = "chip winner" if stat.winner else "chip"
    return (f'<span class="{cls}" style="background:{colour}">{mark}{name}'
            f'<span class="value">{value}</span></span>')


def heat_map(summary: Summary) -> str:
    """The matrix itself: a row per model, a column per category, in each cell the category's
    options best first, each coloured by its delta against the model's baseline."""
    cats = list(dict.fromkeys(t.category for m in summary.models for t in m.categories))
    deltas = [abs(o.delta) for m in summary.models for t in m.categories for o in t.options
              if o.delta is not None and o.delta == o.delta]
    if not cats or not deltas:
        return ""
    scale = max(deltas) or 1.0
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cats)
    rows = []
    for m in summary.models:
        by_cat = {t.category: t for t in m.categories}
        base = fmt_metric(m.baseline.mean) if m.baseline is not None else "-"
        cells = [f'<th class="model">{breakable(m.model, dots=True)}<br>'
                 f'<span class="desc">baseline {html.escape(base)}</span></th>']
        for c in cats:
            t = by_cat.get(c)
            chips = "".join(_chip(summary, o, scale) for o in t.options) if t else ""
            note = f'<span class="desc">{html.escape(_note_of(t))}</span>' if t else ""
            cells.append(f"<td>{chips}{note}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    better = "higher" if summary.metric_mode == Direction.MAX else "lower"
    legend = (f'<p class="legend"><span style="background:{heat_colour(True, 1)}">better than '
              f'the baseline</span><span style="background:{heat_colour(None, 0)}">level or '
              f'no metric</span><span style="background:{heat_colour(False, 1)}">worse</span>'
              f'<span class="winner-mark">{STAR}</span> the category\'s winner</p>')
    caption = (f"<b>The matrix at a glance</b>Each cell holds a category's options for one "
               f"model, best first, each coloured by its change in {html.escape(summary.metric)}"
               f" against that model's baseline ({better} is better; the stronger the colour, "
               f"the larger the change); {STAR} and a black frame mark the winner, one that "
               "beat every other option and the baseline"
               + (f" (sure at {summary.confidence:.0%}; ± is each delta's interval)."
                  if summary.raced else "."))
    return (f'<figure id="heatmap" class="heatmap">\n<table class="heatmap"><thead><tr>'
            f"<th>model</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"{legend}<figcaption>{caption}</figcaption></figure>")


def _note_of(table) -> str:
    if table.winner is not None:
        return ""
    best = table.best_not_winning
    if best is not None:
        return "no option beat the baseline"
    if any(o.tied for o in table.options):
        return "tie: no winner"
    if any(o.leading for o in table.options):
        return "still running: the best so far leads"
    if any(o.verdict == "undecided" for o in table.options):
        return "undecided: no sure winner within the seeds"
    return ""


PRE_COLUMNS = ("log tail", "reason")


def _html_table(t: ReportTable) -> str:
    """One table; where it names an option by description ("option") and run name, the two
    are one cell: the run name, its description beneath (no column repeats the other)."""
    merge = "option" in t.headers and "run name" in t.headers
    shown = [h for h in t.headers if not (merge and h == "option")]
    head = "".join(f"<th>{html.escape('option' if merge and h == 'run name' else h)}</th>"
                   for h in shown)
    body = []
    for row, (winner, better) in zip(t.rows, t.tones, strict=True):
        tone = {True: "better", False: "worse"}.get(better, "")
        cells = dict(zip(t.headers, row, strict=True))
        out = []
        for h in shown:
            text = html.escape(cells[h])
            if merge and h == "run name":
                desc = cells["option"]
                text = (f"<code>{text}</code>" if text else "") + (
                    f'<br><span class="desc">{html.escape(desc)}</span>'
                    if desc and desc != cells[h] else "")
            cls = tone if tone and t.toned(h) else "pre" if h in PRE_COLUMNS else ""
            out.append((f'<td class="{cls}">' if cls else "<td>") + text + "</td>")
        body.append(f'<tr class="{"winner" if winner else ""}">{"".join(out)}</tr>')
    note = f'\n<p class="note">{html.escape(t.note)}</p>' if t.note else ""
    return (f"<h3>{html.escape(t.title)}</h3>\n<table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>{note}")


def _figure(fig: Figure) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    return (f'<figure class="plot"><img alt="{html.escape(fig.title)}" '
            f'src="data:image/png;base64,{data}"><figcaption><b>{html.escape(fig.title)}</b>'
            f"{html.escape(fig.caption)}</figcaption></figure>")


def to_html(summary: Summary, extra: Sequence[Figure] = ()) -> str:
    """The heat map first, then the bar charts, the learning curves, the searches' studies
    (`extra`) and every table."""
    parts = [f"<p>{html.escape(line)}</p>" for line in _intro(summary)]
    matrix = heat_map(summary)
    if matrix:
        parts += ["<h2>The matrix</h2>", matrix]
    plots = figures(summary)
    bars = [f for f in plots if f.name.startswith("deltas_")]
    curves = [f for f in plots if not f.name.startswith("deltas_")]
    if bars:
        parts += ["<h2>Each category against the baseline</h2>", *map(_figure, bars)]
    if curves:
        parts += ["<h2>Learning curves</h2>", *map(_figure, curves)]
    if extra:
        parts += ["<h2>Searches</h2>", *map(_figure, extra)]
    parts.append("<h2>Tables</h2>")
    parts += [_html_table(t) for t in tables(summary)]
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Experiment report</title><style>{STYLE}</style></head><body>"
            "<h1>Experiment report</h1>\n" + "\n".join(parts) + "\n</body></html>\n")
